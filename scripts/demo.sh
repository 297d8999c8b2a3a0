#!/usr/bin/env bash
# The main job: install, index the bundled example corpus, then answer a question.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
bash scripts/setup.sh
STORE=${ENGINE_DEMO_STORE:-.engine-demo}
.venv/bin/engine --store "$STORE" index --topics examples/topics.txt --from examples/pages
.venv/bin/engine --store "$STORE" ask "${1:-how is coffee roasted}"
