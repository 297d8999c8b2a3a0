"""Discovery: a topic → candidate URLs of pages and images, from pluggable providers."""
