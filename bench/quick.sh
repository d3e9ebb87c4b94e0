#!/bin/sh
# The CI step: calls per rotation on a couple of cycles; exits 1 above 6 calls per rotation.
set -eu
cd "$(dirname "$0")/.."
exec python bench/run.py --quick --json "${1:-build/bench-quick.json}"
