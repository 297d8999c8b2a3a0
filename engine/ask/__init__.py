"""The ask pipeline: request → retrieval → evidence → summary → images → AskResult, one stage per module."""

from engine.ask.request import STYLES, AskRequest, Filters

__all__ = ["STYLES", "AskRequest", "Filters"]
