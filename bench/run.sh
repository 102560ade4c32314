#!/usr/bin/env bash
# Run the benchmarks (`make bench`). Extra arguments go to every script, and
# each ignores the options it does not know, e.g. `bash bench/run.sh --files
# 5000 --hash-mib 256 --mib 256 --large-mib 256 --small-files 2000` for a
# quick try. bench_sync.py's own options (--push-mib, --diff, ...) are for
# running it directly; bench_carry.py's --large-mib 2048 --small-files 100000
# are the full sizes of its table.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
py="$here/../.venv/bin/python"
[ -x "$py" ] || py=python3
"$py" "$here/bench_scan.py" "$@"
"$py" "$here/bench_carrier.py" "$@"
"$py" "$here/bench_bundle.py" "$@"
"$py" "$here/bench_trash.py" "$@"
"$py" "$here/bench_scrub.py" "$@"
"$py" "$here/bench_carry.py" "$@"
exec "$py" "$here/bench_sync.py" "$@"
