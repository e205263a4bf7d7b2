#!/usr/bin/env bash
# The libFuzzer tests of a build whose compiler is not Clang (tests/fuzz/CMakeLists.txt):
#
#   run.sh build SOURCE_DIR TREE [CC CXX]
#       configures TREE (once) as a Clang build of SOURCE_DIR with ASan and UBSan, and builds
#       only the fuzz targets there (store/ and fs/ get coverage instrumentation);
#   run.sh run TREE TARGET CORPUS_DIR SECONDS
#       fuzzes TARGET for SECONDS over a copy of CORPUS_DIR (the committed corpus is never
#       written to). Fails on any finding: crash, sanitizer report, leak, timeout (10 s for
#       one input) or out-of-memory (2 GiB). The input is kept in TREE/fuzz-findings/ and
#       shown in hex; add it to the corpus once the bug is fixed.
#
# MEDVFS_FUZZ_JOBS sets the build's parallelism (default 2).
set -euo pipefail

usage() {
  sed -n '2,14p' "$0" >&2
  exit 2
}

build() {
  local src=$1 tree=$2 cc=${3:-clang} cxx=${4:-clang++}
  if [[ ! -f $tree/CMakeCache.txt ]]; then
    local generator=()
    if command -v ninja > /dev/null; then generator=(-G Ninja); fi
    # -O1 without NDEBUG: fast enough to fuzz, and assertions stay on.
    CC=$cc CXX=$cxx cmake -S "$src" -B "$tree" "${generator[@]}" \
      -DMEDVFS_SANITIZE=address,undefined -DMEDVFS_FUZZ=ON -DBUILD_TESTING=ON \
      -DMEDVFS_BENCH=OFF -DCMAKE_BUILD_TYPE=RelWithDebInfo \
      "-DCMAKE_CXX_FLAGS_RELWITHDEBINFO=-O1 -g"
  fi
  cmake --build "$tree" --target fuzz_dicom fuzz_records fuzz_view_paths \
    -j "${MEDVFS_FUZZ_JOBS:-2}"
}

run() {
  local tree=$1 target=$2 corpus=$3 seconds=$4
  local binary=$tree/tests/fuzz/$target
  local work=$tree/fuzz-work/$target findings=$tree/fuzz-findings
  [[ -x $binary ]] || { echo "no $binary: did fuzz_clang_build run?" >&2; exit 1; }
  rm -rf "$work"
  mkdir -p "$work/corpus" "$work/tmp" "$findings"
  cp "$corpus"/* "$work/corpus/"
  echo "fuzzing $target for $seconds s over $(ls "$work/corpus" | wc -l) seeds"
  local status=0
  TMPDIR=$work/tmp "$binary" -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 \
    -print_final_stats=1 -artifact_prefix="$findings/$target-" "$work/corpus" \
    > "$work/log" 2>&1 || status=$?
  if [[ $status -ne 0 ]]; then
    echo "$target: libFuzzer exited with $status; the end of its log ($work/log):"
    grep -v -e '^#[0-9]' -e 'NEW_FUNC' "$work/log" | tail -n 60
    local found
    for found in "$findings/$target"-*; do
      [[ -f $found ]] || continue
      echo "--- $found ($(stat -c %s "$found") bytes):"
      head -c 640 "$found" | od -A x -t x1z
    done
    exit 1
  fi
  grep -E '^(Done|stat::number_of_executed_units|stat::peak_rss_mb)' "$work/log" || true
  echo "new inputs: $(($(ls "$work/corpus" | wc -l) - $(ls "$corpus" | wc -l)))"
  rm -rf "$work"
}

case ${1:-} in
  build)
    [[ $# -ge 3 ]] || usage
    build "${@:2}"
    ;;
  run)
    [[ $# -eq 5 ]] || usage
    run "${@:2}"
    ;;
  *) usage ;;
esac
