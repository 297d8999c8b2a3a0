"""Fetching pages and images from the web, politely and safely.

    netguard    which addresses may be connected to (SSRF guard), checked at connect time
    robots      robots.txt, fetched once per host and cached
    politeness  per-host concurrency and minimum interval between requests
    body        reading a body with a byte cap on the decompressed size
    sniff       what a body really is, whatever its Content-Type says
    fetcher     the Fetcher: one guarded httpx client, redirects, retries, conditional GET
"""
