#!/usr/bin/env bash
# TLS on the TCP source: builds sluice (Release) and bench/tls_loadgen, then runs bench/tls.py
# (tcp -> file for the same lines with and without TLS, and with openssl s_client as sender).
#   bench/tls.sh                     # 2,000,000 lines
#   LINES=500000 REPEAT=3 bench/tls.sh
#   SKIP_BUILD=1 bench/tls.sh        # reuse build-release as it is
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
if [[ "${SKIP_BUILD:-0}" != 1 ]]; then
    cmake -S . -B build-release -G Ninja -DCMAKE_BUILD_TYPE=Release -DSLUICE_BUILD_TESTS=OFF \
        >/dev/null
    ninja -C build-release -j "${JOBS:-2}" sluice >&2
fi
mkdir -p build-release/bench
bin=build-release/bench/tls_loadgen
if [[ ! -x "$bin" || bench/tls_loadgen.cpp -nt "$bin" || bench/lines.h -nt "$bin" ||
      bench/clock.h -nt "$bin" ]]; then
    g++ -O2 -std=c++20 -Wall -Wextra -o "$bin" bench/tls_loadgen.cpp -lssl -lcrypto -lpthread
fi
exec python3 bench/tls.py
