"""Every error the engine raises on purpose.

    EngineError
    ├── ConfigError            bad config file, env var or flag value
    ├── StoreError             the store cannot be opened or used
    │   ├── SchemaTooNewError  the store was written by a newer engine
    │   └── ModelMismatchError the store's vectors come from another model
    ├── ModelUnavailableError  model weights cannot be found or loaded
    ├── GenerationError        a text generator (local model, HTTP endpoint) failed or answered unusably
    └── InputError             an input (file, page, image, record) is unusable
        └── FetchError         a URL could not be fetched (network, HTTP status, limits, robots.txt)

Library code raises these; only the CLI turns them into messages and exit codes.
"""

from __future__ import annotations


class EngineError(Exception):
    """Base class of every error the engine raises on purpose."""


class ConfigError(EngineError):
    """A configuration value is missing, malformed or out of range."""


class StoreError(EngineError):
    """The store cannot be opened, read or written."""


class SchemaTooNewError(StoreError):
    """The store's schema revision is newer than this engine knows."""


class ModelMismatchError(StoreError):
    """The configured model differs from the one the store's vectors were made with."""


class ModelUnavailableError(EngineError):
    """Model weights cannot be found or loaded."""


class GenerationError(EngineError):
    """A text generator failed or answered unusably; the message names the model or URL and why."""


class InputError(EngineError):
    """An input cannot be used; ``source`` names it and the message says why."""

    def __init__(self, source: str, reason: str):
        super().__init__(f"{source}: {reason}")
        self.source = source
        self.reason = reason


class FetchError(InputError):
    """A URL could not be fetched; ``status`` is the HTTP status when one came back.

    ``outcome`` is how the crawl files it: ``gone`` (404/410: the page was removed),
    ``skipped`` (robots.txt disallows it), else ``failed``.
    """

    def __init__(self, source: str, reason: str, status: int | None = None, skipped: bool = False):
        super().__init__(source, reason)
        self.status = status
        self.outcome = "skipped" if skipped else "gone" if status in (404, 410) else "failed"
