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

object_of() {  # the object file a source compiles to
    echo "$build/obj/${1//\//_}.o"
}

# Runs "$@" in the background. There are few enough objects and targets to start them all at
# once; the scheduler shares the cores.
running=()
spawn() {
    "$@" &
    running+=($!)
}

# Waits for every spawned job; returns 1 if any failed.
finish() {
    local failed=0 pid
    for pid in "${running[@]}"; do
        wait "$pid" || failed=1
    done
    running=()
    return $failed
}

compile() {  # compile SOURCE
    "$cxx" "${common_flags[@]}" "${san_flags[@]}" -fsanitize=fuzzer-no-link -c "$repo/$1" \
        -o "$(object_of "$1")"
}

codec_srcs=(ingest/codecs/codec.cpp ingest/codecs/syslog.cpp ingest/codecs/json.cpp
    common/json_writer.cpp)
framing_srcs=(queue/event.cpp ingest/framing.cpp)
echo "Building the library objects with $cxx into $build."
for src in "${codec_srcs[@]}" "${framing_srcs[@]}"; do
    spawn compile "$src"
done
finish
codec_objs=()
for src in "${codec_srcs[@]}"; do codec_objs+=("$(object_of "$src")"); done
framing_objs=()
for src in "${framing_srcs[@]}"; do framing_objs+=("$(object_of "$src")"); done

link_target() {  # link_target NAME OBJECTS...
    local name=$1
    shift
    "$cxx" "${common_flags[@]}" "${san_flags[@]}" -fsanitize=fuzzer "$repo/fuzz/$name.cpp" "$@" \
        -lsimdjson -lfmt -o "$build/$name"
}
spawn link_target fuzz_syslog "${codec_objs[@]}"
spawn link_target fuzz_json "${codec_objs[@]}"
spawn link_target fuzz_framing "${framing_objs[@]}"
finish

scratch=$(mktemp -d)
trap 'rm -rf "$scratch"' EXIT

fuzz() {  # fuzz TARGET: runs it on a scratch copy of its corpus; its output goes to a log
    local target=$1 corpus="$scratch/$1"
    cp -r "$repo/fuzz/corpus/$target" "$corpus"
    # Crash inputs go to the build folder, never the working directory.
    "$build/fuzz_$target" -max_total_time="$seconds" -max_len=8192 -timeout=10 \
        -rss_limit_mb=2048 -print_final_stats=1 \
        -artifact_prefix="$build/artifacts/${target}-" "$corpus" \
        >"$build/fuzz_$target.log" 2>&1
}

# All targets fuzz at once: each is limited by time, not by work, so on fewer cores than
# targets they share the cores for the same wall time instead of queueing one after another.
targets=(syslog json framing)
echo "Fuzzing ${targets[*]} at once for ${seconds}s, each on a copy of fuzz/corpus/TARGET."
pids=()
for target in "${targets[@]}"; do
    fuzz "$target" &
    pids+=($!)
done
status=0
for i in "${!targets[@]}"; do
    target=${targets[$i]}
    if ! wait "${pids[$i]}"; then
        echo "FAILED: fuzz_$target; see $build/fuzz_$target.log and $build/artifacts/." >&2
        tail -n 40 "$build/fuzz_$target.log" >&2
        status=1
        continue
    fi
    grep -E '^stat::number_of_executed_units|^stat::peak_rss_mb' "$build/fuzz_$target.log" |
        sed "s/^/  $target /"
done
exit $status
