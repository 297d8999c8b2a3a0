"""Relevance-cutoff benchmark: does the calibrated cutoff refuse off-topic questions and keep on-topic ones?

    .venv/bin/python benchmarks/relevance.py

Indexes the example pages (and, when present, ../shared/data/real-pages) into temporary
stores with the real text model, then asks the 20 questions of benchmarks/query.py
(10 about the example topics, 10 off-topic) and prints, per store: the calibrated cutoff,
the best-passage score ranges of both groups, how many on-topic questions were refused
and how many off-topic ones answered, and how long calibrating took.
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "benchmarks"))


def main() -> None:
    from query import QUESTIONS

    from engine.ask.calibration import calibrate
    from engine.config import ClipConfig, Config, StoreConfig
    from engine.encoders.text import TextEncoder
    from engine.kb import KnowledgeBase

    topics = (REPO / "examples" / "topics.txt").read_text().split("\n")
    stores = {"example pages": [REPO / "examples" / "pages"]}
    shared = REPO.parent / "shared" / "data" / "real-pages"
    if shared.exists():
        stores["example pages + shared real pages"] = [REPO / "examples" / "pages", shared]
    text = TextEncoder("all-MiniLM-L6-v2")
    print(f"{'store':<36}{'passages':>9}{'cutoff':>8}  {'on-topic best':<14}{'off-topic best':<15}"
          f"{'on refused':>11}{'off answered':>13}{'calibrate s':>12}")
    for name, inputs in stores.items():
        with tempfile.TemporaryDirectory(prefix="engine-relevance-") as tmp:
            config = Config(store=StoreConfig(path=Path(tmp)), clip=ClipConfig(enabled=False))
            with KnowledgeBase(config, text_encoder=text) as kb:
                report = kb.index([t for t in topics if t.strip()], inputs)
                started = time.perf_counter()
                calibration = calibrate(kb.store, text, config.index.topic_min_similarity)
                seconds = time.perf_counter() - started
                answers = [kb.ask(q, max_images=0, max_sentences=1).relevance for q in QUESTIONS]
            on, off = answers[:10], answers[10:]
            span = lambda group: f"{min(r['best_score'] for r in group):.2f}-{max(r['best_score'] for r in group):.3f}"  # noqa: E731
            print(
                f"{name:<36}{report.chunks_added:>9}{calibration.threshold:>8.3f}  {span(on):<14}{span(off):<15}"
                f"{sum(r['nothing_relevant'] for r in on):>11}{sum(not r['nothing_relevant'] for r in off):>13}{seconds:>12.2f}"
            )


if __name__ == "__main__":
    main()
