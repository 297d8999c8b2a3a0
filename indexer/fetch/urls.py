"""Which discovered URLs are worth fetching as pages: courlan's filters, not hand-written regexes."""

from __future__ import annotations

from indexer.fetch.netguard import scheme_problem


def page_url_problem(url: str, allow_private: bool, named_by_user: bool = False) -> str | None:
    """Why ``url`` is not fetched as a page, or None.

    courlan's host-name filter refuses single-label names such as ``localhost``; it is not
    applied with ``allow_private`` (an intranet crawl), nor to IP addresses, which the SSRF
    guard judges (public ones are fetched, internal ones refused with that reason).
    ``named_by_user``: a `--from` URL, which may be a feed or a sitemap, so courlan's file-type
    and feed filters do not apply (what the body is decides).
    """
    from courlan.clean import scrub_url
    from courlan.filters import (
        basic_filter,
        domain_filter,
        extension_filter,
        type_filter,
        validate_url,
    )

    problem = scheme_problem(url)
    if problem:
        return problem
    if not basic_filter(url):
        return "malformed URL (courlan)"
    scrubbed = scrub_url(url)
    valid, parsed = validate_url(scrubbed)
    if not valid or parsed is None:
        return "invalid URL (courlan)"
    if named_by_user:
        pass  # a --from URL may be a feed or sitemap (feed.rss, sitemap.xml.gz, /feed/): its body decides
    elif not extension_filter(parsed.path):
        return "not a web page: the URL names a file of another type (courlan)"
    elif not type_filter(scrubbed):
        return "not an article: a feed or site-navigation URL (courlan)"
    if not allow_private and not _is_ip(parsed.hostname or "") and not domain_filter(parsed.netloc):
        return "unsuitable host name (courlan)"
    return None


def _is_ip(host: str) -> bool:
    import ipaddress

    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True
