#!/usr/bin/env bash
# sluice benchmark: builds sluice (Release) and the bench helpers, then runs every scenario and
# prints lines/s, MB/s, peak RSS, CPU seconds and the ratios to the baselines (see
# docs/BENCHMARKS.md). Not a test; exits 1 when a target is missed or a scenario fails.
#
#   bench/run.sh                     # 2,000,000 lines, all scenarios
#   LINES=500000 REPEAT=3 SCENARIOS=bare-1,file-1 bench/run.sh
#   SCENARIOS=zmq bench/run.sh       # one group: tcp, sqlite, zmq, udp, codec (see bench.py)
#   SKIP_BUILD=1 bench/run.sh        # reuse build-release as it is
#
# Environment: LINES, REPEAT, SCENARIOS, UDP_DATAGRAMS, API_PORT, TCP_PORT, BARE_PORT, UDP_PORT,
# ZMQ_PORT, MAX_BYTES_MIB, FILE_SINK_BATCH, SQLITE_SINK_BATCH, SINK_BATCH, KEEP, BENCH_TMP (see
# bench/bench.py), JOBS (build parallelism, default 2), SKIP_BUILD.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
jobs="${JOBS:-2}"

# Only the baselines (bare-N, zmq-bare, sqlite-raw) run without sluice.
needs_sluice=0
IFS=, read -r -a selected <<<"${SCENARIOS:-all}"
for s in "${selected[@]}"; do
    case "$s" in
        bare-[0-9] | zmq-bare | sqlite-raw | "") ;;
        *) needs_sluice=1 ;;
    esac
done

if [[ "${SKIP_BUILD:-0}" != 1 && "$needs_sluice" == 1 ]]; then
    echo "building sluice (Release) ..." >&2
    cmake -S . -B build-release -G Ninja -DCMAKE_BUILD_TYPE=Release \
        -DSLUICE_BUILD_TESTS=OFF >/dev/null
    ninja -C build-release -j "$jobs" sluice >&2
fi

mkdir -p build-release/bench
for helper in loadgen zmq_loadgen udp_loadgen bare_baseline zmq_bare_baseline sqlite_raw; do
    bin="build-release/bench/$helper"
    src="bench/$helper.cpp"
    libs=(-lsqlite3 -lpthread)
    extra=()
    [[ "$helper" == zmq_* ]] && libs=(-lzmq -lpthread)
    # sqlite_raw runs the SQLite sink's own checkpointer, compiled in with what it needs.
    if [[ "$helper" == sqlite_raw ]]; then
        extra=(sinks/wal_checkpointer.cpp common/sqlite_handle.cpp common/error.cpp -DSPDLOG_COMPILED_LIB
               -DSPDLOG_FMT_EXTERNAL -DSPDLOG_SHARED_LIB)
        libs+=(-lspdlog -lfmt)
    fi
    # sqlite_raw takes the SQLite sink's own settings from sinks/sqlite_sql.h.
    if [[ ! -x "$bin" || "$src" -nt "$bin" || bench/lines.h -nt "$bin" || bench/clock.h -nt "$bin" ||
          sinks/sqlite_sql.h -nt "$bin" || sinks/wal_checkpointer.cpp -nt "$bin" ||
          sinks/wal_checkpointer.h -nt "$bin" ]]; then
        echo "compiling $src ..." >&2
        g++ -O2 -std=c++20 -Wall -Wextra -I. -o "$bin" "$src" "${extra[@]}" "${libs[@]}"
    fi
done

exec python3 bench/bench.py
