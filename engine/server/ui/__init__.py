"""The web UI of ``engine serve``: HTML pages rendered server-side from the API's JSON, no JavaScript."""
