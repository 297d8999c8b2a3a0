"""engine: a persistent, multimodal knowledge base.

    from engine import Config, KnowledgeBase

Importing this package loads no model library, nor even the config: ``import engine.results``
(what `engine ask --server` reads answers with) stays light. Encoders load on first use.
"""

from engine.errors import EngineError

__all__ = ["Config", "EngineError", "KnowledgeBase"]
__version__ = "0.1.0"


def __getattr__(name: str):  # noqa: ANN202 - lazy exports keep `import engine` light
    if name == "Config":
        from engine.config import Config

        return Config
    if name == "KnowledgeBase":
        from engine.kb import KnowledgeBase

        return KnowledgeBase
    raise AttributeError(f"module 'engine' has no attribute {name!r}")
