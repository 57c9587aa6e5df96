#!/usr/bin/env bash
# sluice benchmark: builds sluice (Release) and the bench helpers, then runs every scenario and
# prints lines/s, MB/s, peak RSS, CPU seconds and the ratios to the baselines (see
# docs/BENCHMARKS.md). Not a test; exits 1 when a target is missed or a scenario fails.
#
#   bench/run.sh                     # 2,000,000 lines, all scenarios
#   LINES=500000 REPEAT=3 SCENARIOS=bare-1,file-1 bench/run.sh
#   SKIP_BUILD=1 bench/run.sh        # reuse build-release as it is
#
# Environment: LINES, REPEAT, SCENARIOS, API_PORT, TCP_PORT, BARE_PORT, MAX_BYTES_MIB, SINK_BATCH, KEEP,
# BENCH_TMP (see bench/bench.py), JOBS (build parallelism, default 2), SKIP_BUILD.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
jobs="${JOBS:-2}"

needs_sluice=1
if [[ -n "${SCENARIOS:-}" && ! ",${SCENARIOS}," =~ ,(file|sqlite)-[0-9], ]]; then
    needs_sluice=0
fi

if [[ "${SKIP_BUILD:-0}" != 1 && "$needs_sluice" == 1 ]]; then
    echo "building sluice (Release) ..." >&2
    cmake -S . -B build-release -G Ninja -DCMAKE_BUILD_TYPE=Release \
        -DSLUICE_BUILD_TESTS=OFF >/dev/null
    ninja -C build-release -j "$jobs" sluice >&2
fi

mkdir -p build-release/bench
for helper in loadgen bare_baseline sqlite_raw; do
    bin="build-release/bench/$helper"
    src="bench/$helper.cpp"
    if [[ ! -x "$bin" || "$src" -nt "$bin" ]]; then
        echo "compiling $src ..." >&2
        g++ -O2 -std=c++20 -Wall -Wextra -o "$bin" "$src" -lsqlite3 -lpthread
    fi
done

exec python3 bench/bench.py
