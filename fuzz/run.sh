#!/usr/bin/env bash
# Builds the libFuzzer targets (syslog and JSON codecs, framer) with ASan and UBSan and runs
# each for FUZZ_SECONDS on a scratch copy of its seed corpus, so the repository is never
# written. Exits non-zero on a build failure or on any crash, leak or sanitizer report.
#   fuzz/run.sh [BUILD_DIR]      (default: build-fuzz under the repository root)
#   FUZZ_SECONDS=300 CXX=clang++-15 fuzz/run.sh /tmp/fuzz
set -euo pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
build=${1:-$repo/build-fuzz}
seconds=${FUZZ_SECONDS:-30}
cxx=${CXX:-clang++-14}
mkdir -p "$build/obj" "$build/artifacts"
build=$(cd "$build" && pwd)

common_flags=(-std=c++20 -O1 -g -fno-omit-frame-pointer -I"$repo")
# The library code gets coverage instrumentation but no libFuzzer main; -fno-sanitize-recover
# turns every UBSan report into a crash the run counts.
san_flags=(-fsanitize=address,undefined -fno-sanitize-recover=all)

compile() {  # compile SOURCE -> object path on stdout
    local src=$1
    local obj="$build/obj/${src//\//_}.o"
    "$cxx" "${common_flags[@]}" "${san_flags[@]}" -fsanitize=fuzzer-no-link -c "$repo/$src" \
        -o "$obj" >&2
    echo "$obj"
}

echo "Building the library objects with $cxx into $build."
codec_objs=()
for src in ingest/codecs/codec.cpp ingest/codecs/syslog.cpp ingest/codecs/json.cpp \
    common/json_writer.cpp; do
    codec_objs+=("$(compile "$src")")
done
framing_objs=("$(compile queue/event.cpp)" "$(compile ingest/framing.cpp)")

link_target() {  # link_target NAME OBJECTS...
    local name=$1
    shift
    "$cxx" "${common_flags[@]}" "${san_flags[@]}" -fsanitize=fuzzer "$repo/fuzz/$name.cpp" "$@" \
        -lsimdjson -lfmt -o "$build/$name"
}
link_target fuzz_syslog "${codec_objs[@]}"
link_target fuzz_json "${codec_objs[@]}"
link_target fuzz_framing "${framing_objs[@]}"

scratch=$(mktemp -d)
trap 'rm -rf "$scratch"' EXIT

status=0
for target in syslog json framing; do
    corpus="$scratch/$target"
    cp -r "$repo/fuzz/corpus/$target" "$corpus"
    echo "Fuzzing $target for ${seconds}s on a copy of fuzz/corpus/$target."
    # Crash inputs go to the build folder, never the working directory.
    if ! "$build/fuzz_$target" -max_total_time="$seconds" -max_len=8192 -timeout=10 \
        -rss_limit_mb=2048 -print_final_stats=1 \
        -artifact_prefix="$build/artifacts/${target}-" "$corpus" \
        >"$build/fuzz_$target.log" 2>&1; then
        echo "FAILED: fuzz_$target; see $build/fuzz_$target.log and $build/artifacts/." >&2
        tail -n 40 "$build/fuzz_$target.log" >&2
        status=1
        continue
    fi
    grep -E '^stat::number_of_executed_units|^stat::peak_rss_mb' "$build/fuzz_$target.log" |
        sed "s/^/  $target /"
done
exit $status
