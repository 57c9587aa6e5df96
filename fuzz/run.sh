#!/usr/bin/env bash
# Builds the libFuzzer targets (syslog and JSON codecs, framer, config parser) with ASan and
# UBSan and runs each for FUZZ_SECONDS on a scratch copy of its seed corpus, so the repository
# is never written. Exits non-zero on a build failure or on any crash, leak or sanitizer report.
#   fuzz/run.sh [BUILD_DIR]      (default: build-fuzz under the repository root)
#   FUZZ_SECONDS=300 CXX=clang++-15 fuzz/run.sh /tmp/fuzz
# FUZZ_JOBS (default: the number of cores) caps the compilers run at once.
set -euo pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
build=${1:-$repo/build-fuzz}
seconds=${FUZZ_SECONDS:-30}
cxx=${CXX:-clang++-14}
jobs=${FUZZ_JOBS:-$(nproc)}
mkdir -p "$build/obj/config" "$build/artifacts"
build=$(cd "$build" && pwd)

common_flags=(-std=c++20 -O1 -g -fno-omit-frame-pointer -I"$repo")
# The library code gets coverage instrumentation but no libFuzzer main; -fno-sanitize-recover
# turns every UBSan report into a crash the run counts.
san_flags=(-fsanitize=address,undefined -fno-sanitize-recover=all)

object_of() {  # the object file a source compiles to
    echo "$build/obj/${1//\//_}.o"
}

# Runs "$@" in the background, at most $jobs at once: the config target compiles most of
# sluice, and each of those compilers (Asio, spdlog, toml++) takes up to a GiB of memory.
running=()
spawn_failed=0
spawn() {
    if ((${#running[@]} >= jobs)); then
        wait "${running[0]}" || spawn_failed=1
        running=("${running[@]:1}")
    fi
    "$@" &
    running+=($!)
}

# Waits for every spawned job; returns 1 if any failed.
finish() {
    local failed=$spawn_failed pid
    for pid in "${running[@]}"; do
        wait "$pid" || failed=1
    done
    running=()
    spawn_failed=0
    return $failed
}

compile() {  # compile SOURCE
    "$cxx" "${common_flags[@]}" "${san_flags[@]}" -fsanitize=fuzzer-no-link -c "$repo/$1" \
        -o "$(object_of "$1")"
}

# The config parser reaches the whole table of source and sink types (app/kinds.cpp), whose
# factories make every source and sink: so the config target links all of sluice_core (see
# CMakeLists.txt) but the HTTP API, the pipeline and `sluice top`. These objects need what
# CMake's targets add:
# - spdlog and fmt as Debian builds them (shared, fmt external);
# - Asio's coroutines: Asio enables them for clang only with <experimental/coroutine>, which
#   libstdc++ lacks; clang 14 has the C++20 <coroutine> that the same flags select;
# - no -fsanitize=function: clang 14 cannot emit its prologue data for a coroutine's split
#   functions ("Cannot represent a difference across sections").
# toml++ is the shared library CMake links, the one Debian ships (built with NDEBUG by GCC),
# so the parser is fuzzed on the TOML code that ships. Instrumented header-only toml++ 3.3
# (FUZZ_TOML_HEADER_ONLY=1) fails within seconds on two known bugs of its own: an assertion in
# parse_key() on a table header such as "[=" (marzer/tomlplusplus#301), and
# __builtin_unreachable in is_non_ascii_horizontal_whitespace() on "\xc2\xa2=" (#190, #295);
# the shipped build reports both as parse errors (the second is undefined behaviour there too,
# which GCC's code happens to survive). fuzz/corpus/config holds both inputs.
config_flags=(-DASIO_NO_DEPRECATED -DASIO_HAS_CO_AWAIT=1 -DASIO_HAS_STD_COROUTINE=1
    -DSPDLOG_COMPILED_LIB -DSPDLOG_SHARED_LIB -DSPDLOG_FMT_EXTERNAL -DFMT_SHARED
    -fno-sanitize=function)
toml_lib=()
if [ "${FUZZ_TOML_HEADER_ONLY:-0}" = 1 ]; then
    config_flags+=(-DTOML_HEADER_ONLY=1)
else
    config_flags+=(-DTOML_HEADER_ONLY=0 -DTOML_SHARED_LIB=1)
    toml_lib=(-ltomlplusplus)
fi
compile_config() {  # compile_config UNITY_SOURCE OBJECT
    "$cxx" "${common_flags[@]}" "${san_flags[@]}" "${config_flags[@]}" -fsanitize=fuzzer-no-link \
        -c "$1" -o "$2"
}
config_srcs=()
for src in "$repo"/{common,queue,ingest,sinks}/*.cpp "$repo"/ingest/*/*.cpp \
    "$repo"/app/config*.cpp "$repo"/app/kinds.cpp; do
    config_srcs+=("${src#"$repo"/}")
done
# The config objects compile in unity batches of FUZZ_UNITY (8) files, as sluice_core does for
# the sanitizer builds (SLUICE_UNITY_CORE): Asio, spdlog and fmt are parsed once per batch, not
# once per file, which took most of this script's time on 2 cores.
unity=${FUZZ_UNITY:-8}
mkdir -p "$build/unity"
rm -f "$build"/unity/config_*.cpp "$build"/obj/config/*.o
config_units=()
for ((i = 0; i < ${#config_srcs[@]}; i += unity)); do
    unit="$build/unity/config_$((i / unity)).cpp"
    for src in "${config_srcs[@]:i:unity}"; do
        echo "#include \"$repo/$src\""
    done >"$unit"
    config_units+=("$unit")
done

codec_srcs=(ingest/codecs/codec.cpp ingest/codecs/syslog.cpp ingest/codecs/json.cpp
    common/json_writer.cpp)
framing_srcs=(queue/event.cpp ingest/framing.cpp)
restore_srcs=(ingest/codecs/event_restore.cpp sinks/event_json.cpp)
echo "Building the library objects with $cxx into $build, $jobs at once."
for src in "${codec_srcs[@]}" "${framing_srcs[@]}" "${restore_srcs[@]}"; do
    spawn compile "$src"
done
# In a folder of their own: some are the codec and framing sources again, with other flags.
for unit in "${config_units[@]}"; do
    spawn compile_config "$unit" "$build/obj/config/$(basename "$unit" .cpp).o"
done
finish
codec_objs=()
for src in "${codec_srcs[@]}"; do codec_objs+=("$(object_of "$src")"); done
framing_objs=()
for src in "${framing_srcs[@]}"; do framing_objs+=("$(object_of "$src")"); done
restore_objs=("$(object_of queue/event.cpp)")
for src in "${restore_srcs[@]}"; do restore_objs+=("$(object_of "$src")"); done
config_objs=()
for unit in "${config_units[@]}"; do config_objs+=("$build/obj/config/$(basename "$unit" .cpp).o"); done

link_target() {  # link_target NAME OBJECTS...
    local name=$1
    shift
    "$cxx" "${common_flags[@]}" "${san_flags[@]}" -fsanitize=fuzzer "$repo/fuzz/$name.cpp" "$@" \
        -lsimdjson -lfmt -o "$build/$name"
}
# The libraries sluice_core links (CMakeLists.txt) that the config objects use.
link_config_target() {
    "$cxx" "${common_flags[@]}" "${san_flags[@]}" "${config_flags[@]}" -fsanitize=fuzzer \
        "$repo/fuzz/fuzz_config.cpp" "${config_objs[@]}" "${toml_lib[@]}" -lspdlog -lfmt -lzmq \
        -lsqlite3 -lre2 -lsimdjson -lssl -lcrypto -lnats -pthread -o "$build/fuzz_config"
}
spawn link_target fuzz_syslog "${codec_objs[@]}"
spawn link_target fuzz_json "${codec_objs[@]}" "${restore_objs[@]}"
spawn link_target fuzz_framing "${framing_objs[@]}"
spawn link_config_target
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
targets=(syslog json framing config)
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
