"""Cold-start benchmark: how long a fresh `engine` process takes, against `python -c "import torch"`.

    .venv/bin/python benchmarks/startup.py [--runs 5] [--question "how is coffee roasted"] [--keep DIR] [--json]

About a minute on a 2-core CPU: indexing the example pages, then 5 rounds of the four commands.

Every figure is the wall time of a fresh process (the `engine` console script beside this
Python, else `python -m cli`), from start to exit, output captured. The commands of one round
run one after another and the rounds repeat, so a change in the machine's load hits them all
alike; printed are the median and the minimum of --runs rounds:
- `python -c "import torch"`: the yardstick (what any torch-backed command pays before work);
- `engine --help`;
- `engine --store S status`: S is a small store, examples/pages indexed for examples/topics.txt;
- `engine --store S ask QUESTION`: text.runtime onnx (the ONNX file already exported and
  cached), CLIP off, so a cold ask needs neither torch nor sentence-transformers nor open_clip;
- ask ÷ import torch: the ratio of the two medians.
Targets (from the tracker): --help and status at most 0.5 s each, ask ÷ import torch at most 2.0.

The store is built with the CLI itself (`engine index --from examples/pages`, onnx runtime,
CLIP off) in a temporary folder with its own ONNX cache and an empty config file, so neither
the user's config nor their store is touched; one untimed ask then warms the cache (the
store's relevance calibration, the page cache). Nothing of the engine is imported here.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
EXAMPLE_PAGES = REPO / "examples" / "pages"
TOPICS = REPO / "examples" / "topics.txt"
QUESTION = "how is coffee roasted"
TARGETS = {"engine --help": 0.5, "engine status": 0.5}
MAX_ASK_VS_TORCH = 2.0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=5, help="fresh processes per command (default 5)")
    parser.add_argument("--question", default=QUESTION, help=f"what the timed ask asks (default {QUESTION!r})")
    parser.add_argument("--keep", type=Path, metavar="DIR", help="build the store and ONNX cache in DIR and keep them")
    parser.add_argument("--json", action="store_true", help="print the figures as one JSON object")
    args = parser.parse_args(argv)

    with tempfile.TemporaryDirectory(prefix="engine-startup-") as tmp:
        work = args.keep or Path(tmp)
        work.mkdir(parents=True, exist_ok=True)
        env = _env(work)
        store = work / "store"
        engine = _engine_command()
        if not (store / "engine.db").exists():
            _progress(f"indexing {EXAMPLE_PAGES.relative_to(REPO)} into {store} (onnx runtime, CLIP off) ...")
            _run([*engine, "--store", str(store), "index", "--topics", str(TOPICS), "--from", str(EXAMPLE_PAGES)], env)
        _progress("warming up (one untimed ask) ...")
        _run([*engine, "--store", str(store), "ask", args.question], env)

        commands = {
            'python -c "import torch"': [sys.executable, "-c", "import torch"],
            "engine --help": [*engine, "--help"],
            "engine status": [*engine, "--store", str(store), "status"],
            "engine ask": [*engine, "--store", str(store), "ask", args.question],
        }
        _progress(f"timing {args.runs} rounds of {len(commands)} fresh processes ...")
        seconds = _time(commands, env, args.runs)

    figures = {
        "runs": args.runs,
        "question": args.question,
        "bytecode_cached": _bytecode_cached(),
        "seconds": {
            name: {"median": round(statistics.median(s), 3), "min": round(min(s), 3), "all": [round(x, 3) for x in s]}
            for name, s in seconds.items()
        },
    }
    figures["ask_vs_import_torch"] = round(
        figures["seconds"]["engine ask"]["median"] / figures["seconds"]['python -c "import torch"']["median"], 2
    )
    print(json.dumps(figures, indent=2) if args.json else _table(figures))
    return 0


def _bytecode_cached() -> bool:
    """Whether the engine's own modules start from compiled bytecode (__pycache__), as an installed
    engine does; with PYTHONDONTWRITEBYTECODE set and no cache, each start compiles them (~0.05 s more)."""
    return any((REPO / "cli" / "__pycache__").glob("app.*.pyc"))


def _engine_command() -> list[str]:
    """The console script installed beside this Python (what a user runs), else `python -m cli`."""
    script = Path(sys.executable).with_name("engine")
    return [str(script)] if script.exists() else [sys.executable, "-m", "cli"]


def _env(work: Path) -> dict[str, str]:
    """The environment without the user's ENGINE_* settings: an empty config file, onnx, CLIP off."""
    config = work / "engine-config.toml"
    config.write_text("# empty: defaults and ENGINE_* variables only\n")
    env = {k: v for k, v in os.environ.items() if not k.startswith("ENGINE_")}
    env.update(
        ENGINE_CONFIG=str(config),
        ENGINE_TEXT_RUNTIME="onnx",
        ENGINE_TEXT_ONNX_CACHE=str(work / "onnx-cache"),
        ENGINE_CLIP_ENABLED="false",
        HF_HUB_OFFLINE="1",  # the text model is installed; never wait on the network
    )
    return env


def _run(command: list[str], env: dict[str, str]) -> None:
    done = subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(f"startup.py: {' '.join(command)} failed ({done.returncode}):\n{done.stderr[-2000:]}")


def _time(commands: dict[str, list[str]], env: dict[str, str], runs: int) -> dict[str, list[float]]:
    seconds: dict[str, list[float]] = {name: [] for name in commands}
    for _ in range(runs):
        for name, command in commands.items():  # interleaved: load changes hit all alike
            started = time.perf_counter()
            _run(command, env)
            seconds[name].append(time.perf_counter() - started)
    return seconds


def _table(figures: dict) -> str:
    compiled = "from __pycache__" if figures["bytecode_cached"] else "compiled from source at each start (no __pycache__)"
    lines = [
        f"Fresh processes, {figures['runs']} runs each; ask: {figures['question']!r}, text.runtime onnx, CLIP off; "
        f"the engine's modules {compiled}.",
        "",
        "| command | median | min | target |",
        "| --- | ---: | ---: | ---: |",
    ]
    for name, s in figures["seconds"].items():
        target = f"≤ {TARGETS[name]} s" if name in TARGETS else ""
        lines.append(f"| {name} | {s['median']:.2f} s | {s['min']:.2f} s | {target} |")
    lines.append(f"| engine ask ÷ import torch | {figures['ask_vs_import_torch']:.2f} | | ≤ {MAX_ASK_VS_TORCH} |")
    return "\n".join(lines)


def _progress(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


if __name__ == "__main__":
    sys.exit(main())
