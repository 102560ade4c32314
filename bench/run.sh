#!/usr/bin/env bash
# Run the benchmarks (`make bench`). Extra arguments go to bench_scan.py,
# e.g. `bash bench/run.sh --files 5000 --hash-mib 256` for a quick try.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
py="$here/../.venv/bin/python"
[ -x "$py" ] || py=python3
exec "$py" "$here/bench_scan.py" "$@"
