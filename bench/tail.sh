#!/usr/bin/env bash
# The file source's benchmark: builds sluice (Release) and the line generator, then runs
# bench/tail.py (tail -> file for one file and for 100 files, against cp in the same run).
#   bench/tail.sh                    # 2,000,000 lines
#   LINES=500000 REPEAT=3 bench/tail.sh
#   SKIP_BUILD=1 bench/tail.sh       # reuse build-release as it is
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
if [[ "${SKIP_BUILD:-0}" != 1 ]]; then
    cmake -S . -B build-release -G Ninja -DCMAKE_BUILD_TYPE=Release -DSLUICE_BUILD_TESTS=OFF \
        >/dev/null
    ninja -C build-release -j "${JOBS:-2}" sluice >&2
fi
mkdir -p build-release/bench
if [[ ! -x build-release/bench/loadgen || bench/loadgen.cpp -nt build-release/bench/loadgen ||
      bench/lines.h -nt build-release/bench/loadgen ]]; then
    g++ -O2 -std=c++20 -Wall -Wextra -o build-release/bench/loadgen bench/loadgen.cpp -lpthread
fi
exec python3 bench/tail.py
