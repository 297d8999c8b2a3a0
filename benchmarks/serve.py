"""Serve benchmark: a warm `engine serve` ask over HTTP beside the in-process and the cold CLI ask, in one run.

    .venv/bin/python benchmarks/serve.py [--sizes 10000,100000] [--ingest-asks 1000]

Stores as in benchmarks/query.py (real sentences, synthetic passages, one image per four
documents with a random-weight ViT-B-32 CLIP vector), images on. Every ask runs with the
relevance cutoff off, so every stage runs (the worst case). Printed per store size, p50/p95 ms:
- in-process `kb.ask`, and HTTP `POST /v1/ask` to a server on loopback, each with the remembered
  sentence vectors forgotten before every ask (the full cost of a question met the first time);
- HTTP, the same question again in another style (what a user changing the controls meets);
- `engine ask --server URL` end to end (a process that does not import torch), and the cold
  `engine ask` that loads everything (medians of a few runs).
Then, on the smallest store: asks over HTTP from two threads while an index job writes new
pages (its job is resubmitted until the asks are done): errors, "database is locked", p50/p95.
"""

from __future__ import annotations

import argparse
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "benchmarks"))

import query  # noqa: E402 - the store builder and questions of the query benchmark

STYLES = ("bullets", "paragraph", "brief", "detailed")


class Served:
    """``engine serve``'s app on uvicorn in a thread, on a free loopback port."""

    def __init__(self, app):  # noqa: ANN001 - FastAPI
        import uvicorn

        self.socket = socket.socket()
        self.socket.bind(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self.socket.getsockname()[1]}"
        self.server = uvicorn.Server(uvicorn.Config(app, log_level="warning"))
        self.thread = threading.Thread(target=self.server.run, kwargs={"sockets": [self.socket]}, daemon=True)

    def __enter__(self) -> "Served":
        import httpx

        self.thread.start()
        deadline = time.monotonic() + 600
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"{self.url}/v1/status", timeout=60).status_code == 200:
                    return self
            except httpx.TransportError:
                pass
            time.sleep(0.1)
        raise RuntimeError("the server did not get ready")

    def __exit__(self, *exc_info) -> None:  # noqa: ANN002
        self.server.should_exit = True
        self.thread.join(timeout=60)


def p(values: list[float], q: float) -> float:
    return float(np.percentile(values, q)) if values else float("nan")


def row(name: str, values: list[float]) -> None:
    print(f"  {name:<52}{p(values, 50):>9.1f}{p(values, 95):>9.1f}{len(values):>6}")


def warm_asks(kb, client, questions: list[str]) -> dict[str, list[float]]:  # noqa: ANN001
    """Per-ask wall times (ms): in-process and over HTTP with nothing remembered, HTTP with the sentences remembered."""
    times: dict[str, list[float]] = {"in-process, first time": [], "HTTP, first time": [], "HTTP, same question, other style": []}
    for n, question in enumerate(questions):
        kb.forget_encoded_texts()
        started = time.perf_counter()
        kb.ask(question, min_score="off")
        times["in-process, first time"].append(1000 * (time.perf_counter() - started))
        kb.forget_encoded_texts()
        started = time.perf_counter()
        response = client.post("/v1/ask", json={"question": question, "min_score": "off"})
        times["HTTP, first time"].append(1000 * (time.perf_counter() - started))
        response.raise_for_status()
        started = time.perf_counter()
        response = client.post("/v1/ask", json={"question": question, "min_score": "off", "style": STYLES[1 + n % 3]})
        times["HTTP, same question, other style"].append(1000 * (time.perf_counter() - started))
        response.raise_for_status()
    return times


def cli_walls(root: Path, url: str, runs: int) -> dict[str, float]:
    env = {**os.environ, "ENGINE_CLIP_RANDOM_WEIGHTS": "true", "ENGINE_CLIP_PRETRAINED": ""}
    engine = str(Path(sys.executable).with_name("engine"))

    def wall(command: list[str]) -> float:
        started = time.perf_counter()
        subprocess.run(command, env=env, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        return time.perf_counter() - started

    return {
        "engine ask --server": statistics.median(wall([engine, "ask", "--server", url, q]) for q in query.QUESTIONS[:runs]),
        "engine ask (cold, loads the models)": statistics.median(
            wall([engine, "--store", str(root), "ask", q]) for q in query.QUESTIONS[: max(1, runs // 2)]
        ),
        'python -c "import torch"': statistics.median(wall([sys.executable, "-c", "import torch"]) for _ in range(3)),
    }


def write_pages(folder: Path, pool: list[str], count: int, seed: int) -> Path:
    """``count`` saved HTML pages of real sentences, for an index job to chew on."""
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True)
    for n in range(count):
        body = "".join(f"<p>{' '.join(pool[i] for i in rng.choice(len(pool), 5, replace=False))}</p>" for _ in range(6))
        title = pool[int(rng.integers(len(pool)))][:60]
        (folder / f"page{seed}-{n}.html").write_text(
            f"<html><head><title>{title}</title></head><body><article><h1>{title}</h1>{body}</article></body></html>",
            encoding="utf-8",
        )
    return folder


def asks_during_ingest(client, url: str, pool: list[str], tmp: Path, total: int) -> None:  # noqa: ANN001
    import httpx

    latencies: list[float] = []
    errors: list[str] = []
    done = threading.Event()
    lock = threading.Lock()
    counter = iter(range(total))

    def asker() -> None:
        with httpx.Client(base_url=url, timeout=120) as own:
            for n in counter:
                started = time.perf_counter()
                response = own.post("/v1/ask", json={"question": query.QUESTIONS[n % len(query.QUESTIONS)]})
                elapsed = 1000 * (time.perf_counter() - started)
                with lock:
                    latencies.append(elapsed)
                    if response.status_code != 200 or "database is locked" in response.text:
                        errors.append(f"{response.status_code}: {response.text[:200]}")
        done.set()

    chunks_before = client.get("/v1/status").json()
    jobs: list[dict] = []
    threads = [threading.Thread(target=asker) for _ in range(2)]
    started = time.perf_counter()
    for thread in threads:
        thread.start()
    while not done.is_set():
        folder = write_pages(tmp / f"ingest{len(jobs)}", pool, 300, len(jobs))
        job = client.post("/v1/index-jobs", json={"topics": ["coffee"], "paths": [str(folder)]}).json()
        while not done.is_set():
            job = client.get(f"/v1/jobs/{job['id']}").json()
            if job["state"] not in ("queued", "running"):
                break
            time.sleep(0.5)
        jobs.append(job)
    for thread in threads:
        thread.join()
    seconds = time.perf_counter() - started
    last = client.get(f"/v1/jobs/{jobs[-1]['id']}").json()
    if last["state"] in ("queued", "running"):
        client.delete(f"/v1/jobs/{last['id']}")
    print(f"\n{len(latencies)} asks over HTTP (2 threads) while index jobs wrote, {seconds:.0f} s: "
          f"{len(errors)} errors, p50 {p(latencies, 50):.0f} ms, p95 {p(latencies, 95):.0f} ms")
    print(f"  index jobs during the asks: {[(j['id'], j['state']) for j in jobs]}")
    print(f"  passages before: {chunks_before['chunks']}, after: {client.get('/v1/status').json()['chunks']}")
    for error in errors[:5]:
        print(f"  error: {error}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="10000,100000")
    parser.add_argument("--ingest-asks", type=int, default=1000, help="asks while an index job writes (0: skip)")
    parser.add_argument("--cli-runs", type=int, default=4)
    args = parser.parse_args()

    import httpx

    from engine.config import ClipConfig, Config, StoreConfig
    from engine.encoders.clip import ClipEncoder
    from engine.encoders.text import TextEncoder
    from engine.kb import KnowledgeBase
    from engine.server.app import create_app

    text = TextEncoder("all-MiniLM-L6-v2")
    clip_config = ClipConfig(model="ViT-B-32", pretrained="", random_weights=True)
    clip = ClipEncoder(clip_config)
    clip.load()
    pool, vectors = query.sentence_pool(text)
    sizes = [int(s) for s in args.sizes.split(",")]
    print(f"{len(pool)} real sentences; CLIP ViT-B-32 random weights; {len(query.QUESTIONS)} questions; cutoff off")
    with tempfile.TemporaryDirectory(prefix="engine-serve-bench-") as tmp:
        for size in sizes:
            root = Path(tmp) / f"store{size}"
            started = time.perf_counter()
            query.build_store(root, size, pool, vectors, text, clip.dim, clip.identity)
            print(f"\n{size} passages (built in {time.perf_counter() - started:.0f} s)")
            config = Config(store=StoreConfig(path=root), clip=clip_config)
            with KnowledgeBase(config, text_encoder=text, clip_encoder=clip) as kb, Served(create_app(config, kb)) as served:
                with httpx.Client(base_url=served.url, timeout=300) as client:
                    client.post("/v1/ask", json={"question": query.QUESTIONS[1], "min_score": "off"})
                    print(f"  {'(ms)':<52}{'p50':>9}{'p95':>9}{'n':>6}")
                    for name, values in warm_asks(kb, client, query.QUESTIONS).items():
                        row(name, values)
                    for name, seconds in cli_walls(root, served.url, args.cli_runs).items():
                        print(f"  {name:<52}{1000 * seconds:>9.0f}")
                    if args.ingest_asks and size == sizes[0]:
                        asks_during_ingest(client, served.url, pool, Path(tmp), args.ingest_asks)


if __name__ == "__main__":
    main()
