"""`engine eval`: alignment and retrieval measured the way the seed papers do it.

Modules, one concern each: ``metrics`` (numpy, checked against scikit-learn),
``datasets`` (CSV/JSONL loaders, the store's own pairs), ``cache`` and ``embed``
(embeddings by content hash, batched), ``pairs``, ``retrieval`` (+ ``strategies``),
``matrix``, ``index_quality`` (the tasks), ``results`` (what they return),
``plots`` and ``report`` (PNG, JSON, tables), and ``evaluator`` (the API).
"""

from engine.evaluate.datasets import ArticleDataset, PairDataset, load_dataset
from engine.evaluate.evaluator import Evaluator

__all__ = ["ArticleDataset", "Evaluator", "PairDataset", "load_dataset"]
