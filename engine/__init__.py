"""engine: a persistent, multimodal knowledge base.

    from engine import Config, KnowledgeBase

Importing this package loads no model library; encoders load on first use.
"""

from engine.config import Config
from engine.errors import EngineError

__all__ = ["Config", "EngineError", "KnowledgeBase"]
__version__ = "0.1.0"


def __getattr__(name: str):  # noqa: ANN202 - lazy export keeps `import engine` light
    if name == "KnowledgeBase":
        from engine.kb import KnowledgeBase

        return KnowledgeBase
    raise AttributeError(name)
