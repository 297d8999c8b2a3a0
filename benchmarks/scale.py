"""Scale benchmark: the vector index and `engine ask` on synthetic stores of 10k to 10M passages.

    .venv/bin/python benchmarks/scale.py [--sizes 10000,100000,1000000] [--budget 1GB]
        [--target-recall 0.95] [--work /tmp/engine-scale] [--rebuild] [--json]

The data: sentences of the example pages (and of ../shared/data/real-pages when present) are
embedded once with the real text model (cached in --work). Each passage is 6 distinct pool
sentences drawn at random, its vector the normalised mean of theirs (as benchmarks/query.py);
8 passages make a document, documents are linked to 4 topics. Vectors need no passage text, so
a store is written straight into SQLite (sqlite3, executemany, WAL, synchronous=OFF) after
`Store` has made the schema; the FTS5 index of the passages is built once at the end (its
insert trigger is dropped for the load and put back), the same index the trigger makes. One store
per size lives in --work/<size>/store and is reused unless --rebuild; beside it (not inside),
vectors.npy holds every passage vector in id order, for the exact ground truth only.

Held queries (200): the 20 questions of benchmarks/query.py, encoded with the text model, then
synthetic ones (the normalised mean of 1-3 random pool sentences), none of them in the store.
Their exact top 10 is a streaming brute force over vectors.npy (100k rows at a time).
exact_p50_ms is one query at a time over a faiss IndexFlatIP holding every vector when they
fit in 4 GB (1M passages: 1.5 GB), else the same streaming scan (10M).

Per size: the index is rebuilt with the engine's own code (`Store.rebuild_index`, with the
--budget and --target-recall settings) and timed (build_s); then a fresh process (this script
with --serve) measures what serving costs: open_s (Store + the first `store.index("text")`,
the libraries already imported), retrieval p50/p95 (`index.search`, k=10, each of the 200
queries alone), retrieval_full_p50_ms (`engine.ask.retrieval.retrieve`: filter, dense, BM25,
fuse, for the 20 questions, their vectors encoded beforehand; again with a topic filter, a
quarter of the store, and a source filter, a few passages: the two sides of the exact/ANN
switch), status_s (`engine status`'s report), ask_p50_ms (`KnowledgeBase.ask`,
relevance cutoff off, CLIP off, after a warm-up ask), and RSS (VmRSS / VmHWM) after the asks,
text model included. recall_at_10 is measured here on the 200 held queries: the share of the
exact top 10 in the index's top 10 (a result as similar as the exact 10th, within 1e-5,
counts: ties are not misses); the index's own build-time figure, if it reports one, is under
"index". Disk: engine.db (+ -wal) and the index/ folder.

Printed: build progress on stderr; a table per size, or with --json one JSON object per size.
Targets at 1M passages (2 cores): recall@10 >= 0.95, retrieval p50 <= 20 ms and p95 <= 50 ms,
RSS serving <= 1.5 GB, store open <= 2 s.
"""

from __future__ import annotations

import argparse
import dataclasses
import importlib
import json
import os
import shutil
import sqlite3
import subprocess
import sys
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "benchmarks"))

from query import QUESTIONS, sentence_pool  # noqa: E402 - benchmarks/query.py, beside this file

PER_DOC = 8
SENTENCES_PER_PASSAGE = 6
BATCH = 50_000  # passages generated and written at a time (a multiple of PER_DOC)
HELD_QUERIES = 200
EXACT_TIMED = 20
SCAN_ROWS = 100_000
FLAT_LIMIT_BYTES = 4 << 30
TIE_TOLERANCE = 1e-5
TOPICS = ("coffee", "cats", "coins", "space")


def log(message: str, end: str = "\n") -> None:
    print(message, file=sys.stderr, end=end, flush=True)


# -- the sentence pool and the held queries ------------------------------------------------


def text_encoder():  # noqa: ANN201 - the encoder a new store gets (onnx by default)
    from engine.config import TextModelConfig
    from engine.encoders.factory import build_text_encoder

    return build_text_encoder(TextModelConfig())


def load_pool(work: Path, encoder) -> tuple[list[str], np.ndarray]:  # noqa: ANN001
    """The pool's sentences and vectors, encoded once per model and cached in ``work``."""
    names, vectors = work / "pool.json", work / "pool.npy"
    if names.exists() and vectors.exists():
        cached = json.loads(names.read_text())
        if cached["model"] == encoder.name:
            return cached["sentences"], np.load(vectors)
    started = time.perf_counter()
    sentences, encoded = sentence_pool(encoder)
    encoded = np.ascontiguousarray(encoded, np.float32)
    np.save(vectors, encoded)
    names.write_text(json.dumps({"model": encoder.name, "sentences": sentences}))
    log(f"sentence pool: {len(sentences)} sentences encoded in {time.perf_counter() - started:.1f} s")
    return sentences, encoded


def held_queries(encoder, pool_vectors: np.ndarray) -> np.ndarray:  # noqa: ANN001
    """The real questions, then synthetic queries (means of 1-3 pool sentences) up to 200."""
    rng = np.random.default_rng(1)  # not the stores' seed: these are not stored passages
    real = np.asarray(encoder.encode(QUESTIONS), np.float32)
    synthetic = []
    for _ in range(HELD_QUERIES - len(real)):
        picked = rng.choice(len(pool_vectors), int(rng.integers(1, 4)), replace=False)
        synthetic.append(pool_vectors[picked].mean(axis=0))
    return normalised(np.vstack([real, np.asarray(synthetic, np.float32)]))


def normalised(vectors: np.ndarray) -> np.ndarray:
    return (vectors / np.linalg.norm(vectors, axis=1, keepdims=True)).astype(np.float32)


# -- the store, written straight into SQLite -----------------------------------------------


def create_store(root: Path, encoder) -> None:  # noqa: ANN001
    """The schema (Alembic migrations: tables, FTS5 table and triggers) and the model binding."""
    from engine.store.store import Store

    with Store(root) as store:
        store.bind_model(("text",), encoder.name, encoder.dim)


def open_bulk(db_path: Path) -> sqlite3.Connection:
    conn = sqlite3.connect(db_path, isolation_level=None)
    # Durability is not needed while building (a failed build is redone); speed is.
    for pragma in ("journal_mode=WAL", "synchronous=OFF", "cache_size=-262144", "temp_store=MEMORY"):
        conn.execute(f"PRAGMA {pragma}")
    return conn


@contextmanager
def fts_filled_at_end(conn: sqlite3.Connection) -> Iterator[None]:
    """Bulk-insert chunks without the FTS5 insert trigger, then index them all at once and put the trigger back.

    The same index the trigger makes, in under half the time: row by row the trigger was 6 s of
    a 7.5 s batch of 50k passages, one 'rebuild' of them 2.2 s. A build that fails leaves no
    built.json, so the store is built again from scratch, trigger included.
    """
    trigger = conn.execute("SELECT sql FROM sqlite_master WHERE type = 'trigger' AND name = 'chunks_fts_insert'").fetchone()[0]
    conn.execute("DROP TRIGGER chunks_fts_insert")
    yield
    started = time.perf_counter()
    conn.execute("INSERT INTO chunks_fts(chunks_fts) VALUES ('rebuild')")
    conn.execute(trigger)
    log(f"  full-text index built in {time.perf_counter() - started:.1f} s")


def draw_passages(rng: np.random.Generator, n: int, pool_size: int) -> np.ndarray:
    """(n, 6) pool indices, distinct within each row (rows with a repeat are drawn again)."""
    picks = rng.integers(0, pool_size, (n, SENTENCES_PER_PASSAGE))
    while True:
        ordered = np.sort(picks, axis=1)
        repeats = np.flatnonzero((ordered[:, 1:] == ordered[:, :-1]).any(axis=1))
        if len(repeats) == 0:
            return picks
        picks[repeats] = rng.integers(0, pool_size, (len(repeats), SENTENCES_PER_PASSAGE))


def passage_vectors(pool_vectors: np.ndarray, picks: np.ndarray) -> np.ndarray:
    # Summed one column at a time: gathering (n, 6, dim) at once would take 6x the memory.
    total = np.zeros((len(picks), pool_vectors.shape[1]), np.float32)
    for column in range(picks.shape[1]):
        total += pool_vectors[picks[:, column]]
    return normalised(total)


def batch_rows(first_id: int, picks: np.ndarray, vectors: np.ndarray, pool: list[str], rng, now: float) -> dict[str, list]:  # noqa: ANN001
    """The rows of one batch of passages; passage ids start at ``first_id``, 8 to a document."""
    rows: dict[str, list] = {"documents": [], "sources": [], "chunks": [], "topic_documents": [], "embeddings": []}
    texts = [" ".join(pool[i] for i in row) for row in picks.tolist()]
    for offset in range(0, len(texts), PER_DOC):
        doc_id = (first_id + offset - 1) // PER_DOC + 1
        passages = texts[offset : offset + PER_DOC]
        start = 0
        for position, passage in enumerate(passages):
            chunk_id = first_id + offset + position
            rows["chunks"].append((chunk_id, doc_id, position, passage, start, start + len(passage), len(passage) // 4))
            rows["embeddings"].append(("text", chunk_id, vectors[offset + position].tobytes()))
            start += len(passage) + 1
        d = doc_id - 1
        rows["documents"].append((doc_id, f"doc{doc_id}", pool[int(rng.integers(len(pool)))][:60],
                                  f"20{10 + d % 15}-0{1 + d % 9}-1{d % 10}", "en", " ".join(passages), now))
        url = f"https://example.org/{doc_id}"
        rows["sources"].append((url, url, "benchmark", doc_id, now))
        rows["topic_documents"].append((1 + d % len(TOPICS), doc_id, 0.5, now))
    return rows


INSERTS = {
    "documents": "INSERT INTO documents(id, content_hash, title, published, language, text, created_at) VALUES (?,?,?,?,?,?,?)",
    "sources": "INSERT INTO sources(canonical_url, url, origin, document_id, updated_at) VALUES (?,?,?,?,?)",
    "chunks": "INSERT INTO chunks(id, document_id, position, text, start_char, end_char, n_tokens) VALUES (?,?,?,?,?,?,?)",
    "topic_documents": "INSERT INTO topic_documents(topic_id, document_id, score, created_at) VALUES (?,?,?,?)",
    "embeddings": "INSERT INTO embeddings(space, item_id, vector) VALUES (?,?,?)",
}


def write_batch(conn: sqlite3.Connection, rows: dict[str, list]) -> None:
    conn.execute("BEGIN")
    for table, statement in INSERTS.items():  # documents first: chunks and links refer to them
        conn.executemany(statement, rows[table])
    conn.execute("COMMIT")


def build_store(folder: Path, size: int, pool: list[str], pool_vectors: np.ndarray, encoder) -> float:  # noqa: ANN001
    """Write ``size`` passages into folder/store and their vectors into folder/vectors.npy; seconds taken."""
    root = folder / "store"
    started = time.perf_counter()
    create_store(root, encoder)
    conn = open_bulk(root / "engine.db")
    now = time.time()
    conn.executemany("INSERT INTO topics(id, name, created_at) VALUES (?,?,?)",
                     [(i + 1, name, now) for i, name in enumerate(TOPICS)])
    side = np.lib.format.open_memmap(folder / "vectors.npy", mode="w+", dtype=np.float32, shape=(size, pool_vectors.shape[1]))
    rng = np.random.default_rng(0)
    with fts_filled_at_end(conn):
        for first in range(0, size, BATCH):
            n = min(BATCH, size - first)
            picks = draw_passages(rng, n, len(pool))
            vectors = passage_vectors(pool_vectors, picks)
            side[first : first + n] = vectors
            write_batch(conn, batch_rows(first + 1, picks, vectors, pool, rng, now))
            log(f"  {first + n} / {size} passages written ({time.perf_counter() - started:.0f} s)", end="\r")
        log("")
    side.flush()
    # The version the engine compares its index file with: the space has vectors.
    conn.execute("INSERT OR REPLACE INTO meta(key, value) VALUES ('vectors_version.text', '1')")
    # Written around Store.put_vectors, so its change log names none of them: readers compare ids.
    conn.execute("INSERT OR REPLACE INTO meta(key, value) VALUES ('changes_floor.text', '1')")
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    conn.close()
    return time.perf_counter() - started


def ensure_store(folder: Path, size: int, rebuild: bool, pool: list[str], pool_vectors: np.ndarray, encoder) -> float:  # noqa: ANN001
    """The store of ``size`` passages, built unless a finished one is there; its SQLite build time."""
    marker = folder / "built.json"
    if rebuild and folder.exists():
        shutil.rmtree(folder)
    if marker.exists():
        built = json.loads(marker.read_text())
        if built.get("passages") == size and built.get("model") == encoder.name:
            log(f"{size}: reusing {folder / 'store'} (built in {built['sqlite_build_s']:.1f} s)")
            return built["sqlite_build_s"]
    if folder.exists():
        shutil.rmtree(folder)  # a half-built or different store
    folder.mkdir(parents=True)
    log(f"{size}: building {folder / 'store'}")
    seconds = build_store(folder, size, pool, pool_vectors, encoder)
    marker.write_text(json.dumps({"passages": size, "model": encoder.name, "sqlite_build_s": seconds}))
    log(f"{size}: SQLite part built in {seconds:.1f} s")
    return seconds


# -- exact search (the ground truth) ----------------------------------------------------------


def exact_top10(vectors_path: Path, queries: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Exact top 10 (ids, scores) per query, streaming over the vectors 100k rows at a time."""
    vectors = np.load(vectors_path, mmap_mode="r")
    best_scores = np.full((len(queries), 0), -np.inf, np.float32)
    best_ids = np.zeros((len(queries), 0), np.int64)
    for start in range(0, len(vectors), SCAN_ROWS):
        block_scores = queries @ np.asarray(vectors[start : start + SCAN_ROWS]).T
        block_ids = np.arange(start + 1, start + 1 + block_scores.shape[1], dtype=np.int64)  # row r is id r+1
        scores = np.hstack([best_scores, block_scores])
        ids = np.hstack([best_ids, np.broadcast_to(block_ids, block_scores.shape)])
        k = min(10, scores.shape[1])
        keep = np.argpartition(-scores, k - 1, axis=1)[:, :k]
        best_scores, best_ids = np.take_along_axis(scores, keep, 1), np.take_along_axis(ids, keep, 1)
    order = np.argsort(-best_scores, axis=1)
    return np.take_along_axis(best_ids, order, 1), np.take_along_axis(best_scores, order, 1)


def exact_p50_ms(vectors_path: Path, queries: np.ndarray) -> tuple[float, str]:
    """Median time of one exact query: faiss IndexFlatIP when the vectors fit, else the streaming scan."""
    vectors = np.load(vectors_path, mmap_mode="r")
    timed = queries[:EXACT_TIMED]
    if vectors.nbytes <= FLAT_LIMIT_BYTES:
        import faiss

        flat = faiss.IndexFlatIP(vectors.shape[1])
        for start in range(0, len(vectors), SCAN_ROWS):  # a block at a time: never two copies of all
            flat.add(np.ascontiguousarray(vectors[start : start + SCAN_ROWS]))
        search, how = (lambda q: flat.search(q, 10)), "IndexFlatIP"
    else:
        search, how = (lambda q: exact_top10(vectors_path, q)), "streaming scan"
    search(timed[:1])
    times = []
    for q in range(len(timed)):
        started = time.perf_counter()
        search(timed[q : q + 1])
        times.append(1000 * (time.perf_counter() - started))
    return float(np.median(times)), how


def recall_at_10(found: np.ndarray, truth_ids: np.ndarray, truth_scores: np.ndarray, queries: np.ndarray,
                 vectors_path: Path) -> tuple[float, float]:
    """(tie-aware, strict) mean share of the exact top 10 found in the index's top 10."""
    vectors = np.load(vectors_path, mmap_mode="r")
    strict, tied = [], []
    for q, row in enumerate(found):
        row = [int(i) for i in row if i > 0]
        strict.append(len(set(row) & set(truth_ids[q].tolist())) / 10)
        # What the index returned, scored exactly: as similar as the exact 10th is as good a hit.
        true = np.asarray(vectors[np.asarray(row, np.int64) - 1]) @ queries[q] if row else np.zeros(0)
        tied.append(min(int((true >= truth_scores[q, 9] - TIE_TOLERANCE).sum()), 10) / 10)
    return float(np.mean(tied)), float(np.mean(strict))


# -- the index, built with the engine's code -------------------------------------------------


def index_config(args):  # noqa: ANN001, ANN201 - engine.config.IndexConfig
    from engine.config import IndexConfig

    return IndexConfig(memory_budget=args.budget, target_recall=args.target_recall)


def open_store(root: Path, config):  # noqa: ANN001, ANN201 - engine.store.store.Store
    from engine.store.store import Store

    return Store(root, config)


def index_info(index) -> tuple[str, dict]:  # noqa: ANN001 - engine.store.vectors.VectorIndex
    """The index's FAISS factory string and its manifest's description (kind, tuned parameters, recall)."""
    info = dataclasses.asdict(index.info)
    return info["factory"], info


def build_index(root: Path, args) -> dict:  # noqa: ANN001
    store = open_store(root, index_config(args))
    try:
        store.acquire_write_lock()
        dim = int(store.get_meta("dim.text"))
        started = time.perf_counter()
        index = store.rebuild_index("text", dim)
        build_s = time.perf_counter() - started
        started = time.perf_counter()
        index.save()
        save_s = time.perf_counter() - started
        index_type, info = index_info(index)
        return {"vectors": len(index), "index_type": index_type, "index": info, "build_s": build_s, "save_s": save_s}
    finally:
        store.close()


# -- serving, measured in a fresh process (--serve) ------------------------------------------


def percentile(values: list[float], q: float) -> float:
    return float(np.percentile(values, q))


def memory_mb() -> tuple[float, float]:
    """(VmRSS, VmHWM) of this process in MiB."""
    fields = dict(line.split(":", 1) for line in Path("/proc/self/status").read_text().splitlines() if ":" in line)
    return int(fields["VmRSS"].split()[0]) / 1024, int(fields["VmHWM"].split()[0]) / 1024


def timed_ms(call) -> float:  # noqa: ANN001
    started = time.perf_counter()
    call()
    return 1000 * (time.perf_counter() - started)


def serve(args) -> None:  # noqa: ANN001
    """Open the store as `engine ask` does, time searches and asks, print one JSON line."""
    faiss = importlib.import_module("faiss")  # before timing: open_s is the store and its index, not imports

    from engine.ask.request import AskRequest, Filters, resolve
    from engine.ask.retrieval import retrieve
    from engine.store.health import status_at
    from engine.config import ClipConfig, Config, StoreConfig
    from engine.kb import KnowledgeBase

    queries = np.load(args.queries)
    config = Config(store=StoreConfig(path=Path(args.serve)), index=index_config(args), clip=ClipConfig(enabled=False))
    kb = KnowledgeBase(config)
    started = time.perf_counter()
    store = kb.store
    index = store.index("text", int(store.get_meta("dim.text")))
    open_s = time.perf_counter() - started

    index.search(queries[:1], 10)
    search_ms, found = [], []
    for q in queries:
        started = time.perf_counter()
        _, ids = index.search(q[None, :], 10)
        search_ms.append(1000 * (time.perf_counter() - started))
        found.append(np.pad(ids[0], (0, 10 - len(ids[0])), constant_values=-1))
    np.save(args.found, np.asarray(found, np.int64))

    plans = [resolve(AskRequest(question), config.ask, False) for question in QUESTIONS]
    similarity = config.index.topic_min_similarity
    retrieve(store, index, plans[0], queries[0], similarity)
    full_ms = [timed_ms(lambda: retrieve(store, index, plan, queries[n], similarity)) for n, plan in enumerate(plans)]

    # Filtered: a topic (a quarter of the store: the widened ANN search) and a source (a few passages: exact).
    filtered = {}
    for name, filters in (("topic", Filters(topic=TOPICS[0])), ("source", Filters(source="example.org/1234"))):
        plans_filtered = [resolve(AskRequest(question, filters=filters), config.ask, False) for question in QUESTIONS]
        retrieve(store, index, plans_filtered[0], queries[0], similarity)
        filtered[f"retrieval_{name}_filter_p50_ms"] = percentile(
            [timed_ms(lambda: retrieve(store, index, plan, queries[n], similarity)) for n, plan in enumerate(plans_filtered)], 50
        )
    status_s = timed_ms(lambda: status_at(Path(args.serve), similarity)) / 1000

    kb.ask(QUESTIONS[0], min_score="off")  # warm-up: loads the text model (exports it to ONNX if missing)
    ask_ms = [timed_ms(lambda: kb.ask(question, min_score="off")) for question in QUESTIONS]
    rss, peak = memory_mb()
    index_type, info = index_info(index)
    kb.close()
    print(json.dumps({
        "open_s": open_s, "retrieval_p50_ms": percentile(search_ms, 50), "retrieval_p95_ms": percentile(search_ms, 95),
        "retrieval_full_p50_ms": percentile(full_ms, 50), "ask_p50_ms": percentile(ask_ms, 50),
        "ask_p95_ms": percentile(ask_ms, 95), "rss_mb": rss, "peak_rss_mb": peak,
        "served_index_type": index_type, "served_index": info, "status_s": status_s, **filtered,
        # With every core in use by FAISS's OpenMP threads, a busy machine stalls a single query (see load_1m).
        "omp_threads": faiss.omp_get_max_threads(),
    }, default=str))


def run_serve(root: Path, folder: Path, args) -> dict:  # noqa: ANN001
    command = [sys.executable, __file__, "--serve", str(root), "--queries", str(folder / "queries.npy"),
               "--found", str(folder / "found.npy"), "--budget", args.budget, "--target-recall", str(args.target_recall)]
    done = subprocess.run(command, stdout=subprocess.PIPE, text=True, check=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


# -- one size, end to end ----------------------------------------------------------------------


def disk_mb(root: Path) -> float:
    files = [root / "engine.db", root / "engine.db-wal"]
    if (root / "index").exists():
        files += [f for f in (root / "index").rglob("*") if f.is_file()]
    return sum(f.stat().st_size for f in files if f.exists()) / 2**20


def measure(size: int, args, pool: list[str], pool_vectors: np.ndarray, encoder, queries: np.ndarray) -> dict:  # noqa: ANN001
    folder = Path(args.work) / str(size)
    sqlite_build_s = ensure_store(folder, size, args.rebuild, pool, pool_vectors, encoder)
    root, vectors_path = folder / "store", folder / "vectors.npy"
    np.save(folder / "queries.npy", queries)
    truth_ids, truth_scores = exact_top10(vectors_path, queries)
    exact_ms, exact_how = exact_p50_ms(vectors_path, queries)
    log(f"{size}: building the index")
    built = build_index(root, args)
    log(f"{size}: {built['index_type']} built in {built['build_s']:.1f} s; serving in a fresh process")
    load = os.getloadavg()[0]  # others' work on the machine skews latency: recorded with the figures
    served = run_serve(root, folder, args)
    recall, strict = recall_at_10(np.load(folder / "found.npy"), truth_ids, truth_scores, queries, vectors_path)
    return {
        "passages": size, "vectors": built["vectors"], "index_type": built["index_type"],
        "recall_at_10": recall, "recall_at_10_strict": strict,
        "retrieval_p50_ms": served["retrieval_p50_ms"], "retrieval_p95_ms": served["retrieval_p95_ms"],
        "exact_p50_ms": exact_ms, "exact_search": exact_how, "rss_mb": served["rss_mb"], "open_s": served["open_s"],
        "build_s": built["build_s"], "save_s": built["save_s"], "sqlite_build_s": sqlite_build_s,
        "ask_p50_ms": served["ask_p50_ms"], "ask_p95_ms": served["ask_p95_ms"],
        "retrieval_full_p50_ms": served["retrieval_full_p50_ms"], "disk_mb": disk_mb(root),
        "retrieval_topic_filter_p50_ms": served["retrieval_topic_filter_p50_ms"],
        "retrieval_source_filter_p50_ms": served["retrieval_source_filter_p50_ms"], "status_s": served["status_s"],
        "peak_rss_mb": served["peak_rss_mb"], "load_1m": load, "omp_threads": served["omp_threads"], "memory_budget": args.budget, "target_recall": args.target_recall,
        "index": built["index"],
    }


ROWS = [
    ("vectors", "vectors", "{:d}"), ("index", "index_type", "{}"), ("recall@10 (200 held)", "recall_at_10", "{:.4f}"),
    ("retrieval p50 / p95 ms", ("retrieval_p50_ms", "retrieval_p95_ms"), "{:.2f} / {:.2f}"),
    ("exact search p50 ms", "exact_p50_ms", "{:.2f}"), ("retrieve() p50 ms", "retrieval_full_p50_ms", "{:.1f}"),
    ("retrieve() topic / source filter p50 ms", ("retrieval_topic_filter_p50_ms", "retrieval_source_filter_p50_ms"), "{:.1f} / {:.1f}"),
    ("status s", "status_s", "{:.2f}"),
    ("ask p50 ms", "ask_p50_ms", "{:.1f}"), ("store open s", "open_s", "{:.3f}"),
    ("RSS serving / peak MiB", ("rss_mb", "peak_rss_mb"), "{:.0f} / {:.0f}"), ("disk MiB", "disk_mb", "{:.0f}"),
    ("SQLite build s", "sqlite_build_s", "{:.1f}"), ("index build s", "build_s", "{:.1f}"),
]


def print_table(result: dict) -> None:
    print(f"{result['passages']} passages (budget {result['memory_budget']}, target recall {result['target_recall']})")
    for label, keys, fmt in ROWS:
        values = [result[k] for k in keys] if isinstance(keys, tuple) else [result[keys]]
        print(f"  {label:<42}{fmt.format(*values)}")
    print(flush=True)


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="10000,100000,1000000", help="passage counts, comma-separated")
    parser.add_argument("--budget", default="1GB", help="index.memory_budget for the index the engine chooses")
    parser.add_argument("--target-recall", type=float, default=0.95, help="index.target_recall")
    parser.add_argument("--work", default="/tmp/engine-scale", help="where the pool, stores and vectors are kept")
    parser.add_argument("--rebuild", action="store_true", help="build the stores again even if built")
    parser.add_argument("--json", action="store_true", help="one JSON object per size instead of tables")
    # The serving half, run by this script in a fresh process.
    parser.add_argument("--serve", help=argparse.SUPPRESS)
    parser.add_argument("--queries", help=argparse.SUPPRESS)
    parser.add_argument("--found", help=argparse.SUPPRESS)
    return parser.parse_args()


def main() -> None:
    args = parse_args()
    if args.serve:
        serve(args)
        return
    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    encoder = text_encoder()
    pool, pool_vectors = load_pool(work, encoder)
    queries = held_queries(encoder, pool_vectors)
    log(f"sentence pool: {len(pool)} sentences; {len(queries)} held queries ({len(QUESTIONS)} real)")
    for size in [int(s) for s in args.sizes.split(",")]:
        result = measure(size, args, pool, pool_vectors, encoder, queries)
        if args.json:
            print(json.dumps(result, default=str), flush=True)
        else:
            print_table(result)


if __name__ == "__main__":
    main()
