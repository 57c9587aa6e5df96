#!/usr/bin/env bash
# sluice NATS JetStream benchmark: builds sluice (Release) and the helpers (loadgen, nats_bare),
# then runs bench/nats.py, which starts its own nats-server clusters (R1: one node, R3: three)
# and measures the nats sink (agent) and the nats source (aggregator) against bare nats.c
# publishers and consumers in the same run (see docs/BENCHMARKS.md, "NATS JetStream tier").
# Not a test; exits 1 when a target is missed or a scenario fails.
#
#   bench/nats.sh                                  # 1,000,000 lines, R1 and R3, every scenario
#   LINES=200000 REPLICAS_LIST=1 bench/nats.sh
#   SCENARIOS=bare-pub-1,bare-pub-packed,bare-consume-1,bare-consume-packed bench/nats.sh
#   SKIP_BUILD=1 REPEAT=3 bench/nats.sh
#
# Environment: LINES, REPEAT, PACK, IN_FLIGHT, FETCH_BATCH, REPLICAS_LIST, SCENARIOS, FORMAT,
# FILL, MAX_BYTES, STREAM_PRECREATE, KEEP, BENCH_TMP (see bench/nats.py), JOBS (build
# parallelism, default 2), SKIP_BUILD.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
jobs="${JOBS:-2}"

# Only the bare scenarios (and a bare fill) run without sluice.
needs_sluice=0
IFS=, read -r -a selected <<<"${SCENARIOS:-all}"
for s in "${selected[@]}"; do
    case "$s" in
        bare-*) ;;
        *) needs_sluice=1 ;;
    esac
done
[[ "${FILL:-bare}" == agent ]] && needs_sluice=1

if [[ "${SKIP_BUILD:-0}" != 1 && "$needs_sluice" == 1 ]]; then
    echo "building sluice (Release) ..." >&2
    cmake -S . -B build-release -G Ninja -DCMAKE_BUILD_TYPE=Release \
        -DSLUICE_BUILD_TESTS=OFF >/dev/null
    ninja -C build-release -j "$jobs" sluice >&2
fi

mkdir -p build-release/bench
for helper in loadgen nats_bare; do
    bin="build-release/bench/$helper"
    src="bench/$helper.cpp"
    libs=(-lpthread)
    [[ "$helper" == nats_bare ]] && read -r -a libs <<<"$(pkg-config --cflags --libs libnats) -lpthread"
    if [[ ! -x "$bin" || "$src" -nt "$bin" || bench/lines.h -nt "$bin" || bench/clock.h -nt "$bin" ]]; then
        echo "compiling $src ..." >&2
        g++ -O2 -std=c++20 -Wall -Wextra -I. -o "$bin" "$src" "${libs[@]}"
    fi
done

exec python3 bench/nats.py
