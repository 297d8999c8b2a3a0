"""Providers from the ``[discover]`` settings: names in ``providers``, each with its count."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from engine.config import DiscoverConfig
from engine.errors import ConfigError
from indexer.discover.base import Provider
from indexer.discover.ddg import SAFESEARCH, TIMELIMITS, DdgsSearch, DdgsSettings
from indexer.discover.feeds import FeedEntries
from indexer.discover.searxng import SearxngSearch
from indexer.discover.sitemaps import SitemapUrls
from indexer.discover.text import web_url
from indexer.discover.wikipedia import MediaWikiApi, WikipediaImages, WikipediaPages

GROUPS = {
    "wikipedia": ("wikipedia-pages", "wikipedia-images"),
    "ddgs": ("ddgs-web", "ddgs-news", "ddgs-images"),
    "searxng": ("searxng-web", "searxng-news", "searxng-images"),
    "feeds": ("feeds",),
    "sitemaps": ("sitemaps",),
}


def build_providers(config: DiscoverConfig) -> list[Provider]:
    """The configured providers in ``providers`` order; those whose count is 0 are left out.

    Raises:
        ConfigError: an unknown provider name, a negative count, a bad ddgs option, or a
            listed provider whose URL setting is empty or not an http(s) URL.
    """
    _check_numbers(config)
    providers: list[Provider] = []
    for name in provider_names(config.providers):
        providers += _BUILDERS[name](config)
    return providers


def configured_endpoints(config: DiscoverConfig) -> list[str]:
    """The service URLs the user configured for the listed providers: discovery may reach them even
    on loopback or a private network (what they return is still guarded)."""
    names = provider_names(config.providers)
    urls: list[str] = []
    if any(n.startswith("wikipedia") for n in names):
        urls += [config.wikipedia_api_url]
    if any(n.startswith("searxng") for n in names):
        urls += [config.searxng_url.strip()]
    if "feeds" in names:
        urls += [u.strip() for u in config.feed_urls.split(",") if u.strip()]
    if "sitemaps" in names:
        urls += [u.strip() for u in config.sitemap_urls.split(",") if u.strip()]
    return [u for u in urls if u]


def provider_names(setting: str) -> list[str]:
    """``discover.providers`` expanded: groups to their members, duplicates dropped, order kept."""
    known = {member for members in GROUPS.values() for member in members}
    names: list[str] = []
    for item in (part.strip().lower() for part in setting.split(",")):
        if not item:
            continue
        if item not in GROUPS and item not in known:
            choices = ", ".join([*GROUPS, *sorted(known - set(GROUPS))])
            raise ConfigError(f"discover.providers: unknown provider {item!r} (known: {choices})")
        names += [n for n in GROUPS.get(item, (item,)) if n not in names]
    return names


def _wikipedia_pages(c: DiscoverConfig) -> list[Provider]:
    if not c.wikipedia_pages:
        return []
    return [WikipediaPages(_mediawiki(c, "wikipedia-pages"), c.wikipedia_pages)]


def _wikipedia_images(c: DiscoverConfig) -> list[Provider]:
    if not c.wikipedia_images or not c.wikipedia_image_pages:
        return []
    api = _mediawiki(c, "wikipedia-images")
    return [WikipediaImages(api, c.wikipedia_images, c.wikipedia_image_pages)]


def _mediawiki(c: DiscoverConfig, name: str) -> MediaWikiApi:
    _require_url("wikipedia_api_url", c.wikipedia_api_url)
    if "{title}" not in c.wikipedia_article_url:
        raise ConfigError(
            f"discover.wikipedia_article_url: {c.wikipedia_article_url!r} has no {{title}} placeholder"
        )
    _require_url("wikipedia_article_url", c.wikipedia_article_url.replace("{title}", "x"))
    return MediaWikiApi(name, c.wikipedia_api_url, c.wikipedia_article_url, c.max_response_bytes)


def _ddgs(kind: str, count: Callable[[DiscoverConfig], int]) -> Callable[[DiscoverConfig], list[Provider]]:
    def build(c: DiscoverConfig) -> list[Provider]:
        if c.ddgs_safesearch not in SAFESEARCH:
            raise ConfigError(f"discover.ddgs_safesearch: {c.ddgs_safesearch!r} is not one of {SAFESEARCH}")
        if c.ddgs_timelimit not in TIMELIMITS:
            raise ConfigError(
                f"discover.ddgs_timelimit: {c.ddgs_timelimit!r} is not d, w, m, y or empty"
            )
        if c.ddgs_ca_bundle and not Path(c.ddgs_ca_bundle).is_file():
            raise ConfigError(f"discover.ddgs_ca_bundle: {c.ddgs_ca_bundle} is not a file")
        settings = DdgsSettings(
            backend=c.ddgs_backend,
            region=c.ddgs_region,
            safesearch=c.ddgs_safesearch,
            timelimit=c.ddgs_timelimit,
            proxy=c.ddgs_proxy,
            ca_bundle=c.ddgs_ca_bundle,
        )
        return [DdgsSearch(kind, count(c), settings)] if count(c) else []  # type: ignore[arg-type]

    return build


def _searxng(kind: str, count: Callable[[DiscoverConfig], int]) -> Callable[[DiscoverConfig], list[Provider]]:
    def build(c: DiscoverConfig) -> list[Provider]:
        if not c.searxng_url.strip():
            raise ConfigError(f"discover.providers names searxng-{kind} but discover.searxng_url is empty")
        _require_url("searxng_url", c.searxng_url)
        if not count(c):
            return []
        return [SearxngSearch(kind, c.searxng_url.strip(), count(c), c.max_response_bytes)]  # type: ignore[arg-type]

    return build


def _feeds(c: DiscoverConfig) -> list[Provider]:
    urls = _url_list("feed_urls", c.feed_urls, "feeds")
    if not c.feed_results:
        return []
    return [FeedEntries(u, c.feed_results, c.max_response_bytes, c.feeds_topic_filter) for u in urls]


def _sitemaps(c: DiscoverConfig) -> list[Provider]:
    urls = _url_list("sitemap_urls", c.sitemap_urls, "sitemaps")
    if not c.sitemap_results:
        return []
    return [
        SitemapUrls(u, c.sitemap_results, c.max_response_bytes, c.sitemap_max_children, c.feeds_topic_filter)
        for u in urls
    ]


_BUILDERS: dict[str, Callable[[DiscoverConfig], list[Provider]]] = {
    "wikipedia-pages": _wikipedia_pages,
    "wikipedia-images": _wikipedia_images,
    "ddgs-web": _ddgs("web", lambda c: c.ddgs_web_results),
    "ddgs-news": _ddgs("news", lambda c: c.ddgs_news_results),
    "ddgs-images": _ddgs("images", lambda c: c.ddgs_images_results),
    "searxng-web": _searxng("web", lambda c: c.searxng_web_results),
    "searxng-news": _searxng("news", lambda c: c.searxng_news_results),
    "searxng-images": _searxng("images", lambda c: c.searxng_images_results),
    "feeds": _feeds,
    "sitemaps": _sitemaps,
}


def _url_list(setting: str, value: str, provider: str) -> list[str]:
    urls = [u.strip() for u in value.split(",") if u.strip()]
    if not urls:
        raise ConfigError(f"discover.providers names {provider} but discover.{setting} is empty")
    for url in urls:
        _require_url(setting, url)
    return urls


def _require_url(setting: str, value: str) -> None:
    if not web_url(value):
        raise ConfigError(f"discover.{setting}: {value!r} is not an http(s) URL")


def _check_numbers(c: DiscoverConfig) -> None:
    for name in (
        "max_pages_per_topic", "max_images_per_topic", "wikipedia_pages", "wikipedia_images",
        "wikipedia_image_pages", "ddgs_web_results", "ddgs_news_results", "ddgs_images_results",
        "searxng_web_results", "searxng_news_results", "searxng_images_results",
        "feed_results", "sitemap_results",
    ):
        if getattr(c, name) < 0:
            raise ConfigError(f"discover.{name}: {getattr(c, name)} is negative")
    for name in ("max_response_bytes", "sitemap_max_children"):
        if getattr(c, name) < 1:
            raise ConfigError(f"discover.{name}: {getattr(c, name)} must be at least 1")
