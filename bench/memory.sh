#!/usr/bin/env bash
# sluice memory figures: builds sluice (Release) and loadgen, then prints the RSS of a program
# that only loads sluice's libraries (the floor), an idle daemon with the built-in default
# config, the peak with a 4 MiB queue before a locked database, and the peak over max_bytes of
# a 64 MiB queue filled by a 2,000,000-line burst (see bench/memory.py, docs/BENCHMARKS.md).
# Memory figures do not depend on the load of the machine; the builds do take its cores.
#
#   bench/memory.sh
#   SKIP_BUILD=1 LINES=500000 bench/memory.sh
#
# Environment: LINES, MAX_BYTES_MIB, API_PORT, TCP_PORT, ZMQ_PORT, KEEP, BENCH_TMP (see
# bench/memory.py), JOBS (build parallelism, default 2), SKIP_BUILD.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
jobs="${JOBS:-2}"

if [[ "${SKIP_BUILD:-0}" != 1 ]]; then
    echo "building sluice (Release) ..." >&2
    cmake -S . -B build-release -G Ninja -DCMAKE_BUILD_TYPE=Release \
        -DSLUICE_BUILD_TESTS=OFF >/dev/null
    ninja -C build-release -j "$jobs" sluice >&2
fi
mkdir -p build-release/bench
if [[ ! -x build-release/bench/loadgen || bench/loadgen.cpp -nt build-release/bench/loadgen ||
      bench/lines.h -nt build-release/bench/loadgen ]]; then
    echo "compiling bench/loadgen.cpp ..." >&2
    g++ -O2 -std=c++20 -Wall -Wextra -o build-release/bench/loadgen bench/loadgen.cpp -lpthread
fi

exec python3 bench/memory.py
