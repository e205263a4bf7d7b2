#!/usr/bin/env bash
# Runs clang-tidy (the checks in the source tree's .clang-tidy) over the product sources,
# store/, fs/ and tools/, with the build's compile_commands.json, and fails on any finding.
# Tests are not linted.
#   run_clang_tidy.sh SOURCE_DIR BUILD_DIR [JOBS]
#   run_clang_tidy.sh --self-test SOURCE_DIR   plants a finding in a scratch tree: it must fail,
#                                              and the same tree without it must pass
# A missing clang-tidy or compile database fails: CI never skips the lint.
set -euo pipefail

runner=$(command -v run-clang-tidy || command -v run-clang-tidy-14 || true)
tidy=$(command -v clang-tidy || command -v clang-tidy-14 || true)
if [[ -z "$runner" || -z "$tidy" ]]; then
  echo "run_clang_tidy: clang-tidy and run-clang-tidy are needed (tools/install-deps.sh)" >&2
  exit 1
fi

# lint SOURCE_DIR BUILD_DIR JOBS: prints the findings, returns 1 if there is any.
lint() {
  local source_dir=$1 build_dir=$2 jobs=$3
  local database="$build_dir/compile_commands.json"
  if [[ ! -f "$database" ]]; then
    echo "run_clang_tidy: no $database (configure with CMAKE_EXPORT_COMPILE_COMMANDS=ON)" >&2
    return 1
  fi
  local files
  files=$(grep -cE "\"file\": \"$source_dir/(store|fs|tools)/" "$database" || true)
  if ((files == 0)); then
    echo "run_clang_tidy: $database lists no file of $source_dir/{store,fs,tools}" >&2
    return 1
  fi
  local output status=0
  output=$(mktemp)
  # The build's flags are GCC's: clang does not know some warning options (-Wno-restrict).
  "$runner" -clang-tidy-binary "$tidy" -p "$build_dir" -j "$jobs" -quiet \
    -header-filter="^$source_dir/(store|fs|tools)/" \
    -extra-arg=-Wno-unknown-warning-option \
    "^$source_dir/(store|fs|tools)/.*\\.cc\$" >"$output" 2>&1 || status=$?
  # run-clang-tidy 14 always asks for colours: strip them for the log and the count.
  sed -i 's/\x1b\[[0-9;]*m//g' "$output"
  # One line per finding (a header's finding shows once, however many files include it).
  local findings
  findings=$(grep -E '^[^ ]+:[0-9]+:[0-9]+: (warning|error): ' "$output" | sort -u || true)
  if [[ -n "$findings" ]] || ((status != 0)); then
    cat "$output"
    rm -f "$output"
    echo
    echo "run_clang_tidy: findings (fix them, or NOLINT(check) with the reason):"
    echo "$findings"
    return 1
  fi
  rm -f "$output"
  echo "run_clang_tidy: no findings in $files files"
}

self_test() {
  local scratch
  scratch=$(mktemp -d)
  trap 'rm -rf "$scratch"' RETURN
  mkdir -p "$scratch/store" "$scratch/build"
  cp "$1/.clang-tidy" "$scratch/"
  cat >"$scratch/build/compile_commands.json" <<JSON
[{"directory": "$scratch/build", "file": "$scratch/store/planted.cc",
  "command": "c++ -std=c++20 -Wno-restrict -c $scratch/store/planted.cc -o planted.o"}]
JSON
  cat >"$scratch/store/planted.cc" <<'CC'
#include <string>
#include <utility>
std::string Planted(std::string s) {
  std::string t = std::move(s);
  return s + t;  // use after move
}
CC
  if lint "$scratch" "$scratch/build" 1 >"$scratch/log" 2>&1; then
    cat "$scratch/log"
    echo "run_clang_tidy --self-test: a use after move passed the lint" >&2
    return 1
  fi
  if ! grep -q 'bugprone-use-after-move' "$scratch/log"; then
    cat "$scratch/log"
    echo "run_clang_tidy --self-test: the lint failed, but not on the planted finding" >&2
    return 1
  fi
  sed -i 's/return s + t;  \/\/ use after move/return t;/' "$scratch/store/planted.cc"
  if ! lint "$scratch" "$scratch/build" 1 >"$scratch/log" 2>&1; then
    cat "$scratch/log"
    echo "run_clang_tidy --self-test: the lint failed on a clean file" >&2
    return 1
  fi
  echo "run_clang_tidy --self-test: the planted finding fails the lint, the clean file passes"
}

if [[ "${1:-}" == "--self-test" ]]; then
  (($# == 2)) || { echo "usage: $0 --self-test SOURCE_DIR" >&2; exit 2; }
  self_test "$(cd "$2" && pwd)"
  exit
fi
if (($# < 2)); then
  echo "usage: $0 SOURCE_DIR BUILD_DIR [JOBS] | --self-test SOURCE_DIR" >&2
  exit 2
fi
lint "$(cd "$1" && pwd)" "$(cd "$2" && pwd)" "${3:-2}"
