#!/usr/bin/env bash
# Latency at the default batch settings: builds sluice (Release) and runs bench/latency.py
# (a generator at 1,000 and 100,000 lines/s into a file and a SQLite sink; p50/p99 of
# sluice_sink_latency_seconds).
#   bench/latency.sh
#   RATES=1000 SECONDS=30 bench/latency.sh
#   SKIP_BUILD=1 bench/latency.sh       # reuse build-release as it is
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
if [[ "${SKIP_BUILD:-0}" != 1 ]]; then
    cmake -S . -B build-release -G Ninja -DCMAKE_BUILD_TYPE=Release -DSLUICE_BUILD_TESTS=OFF \
        >/dev/null
    ninja -C build-release -j "${JOBS:-2}" sluice >&2
fi
exec /usr/bin/python3 bench/latency.py
