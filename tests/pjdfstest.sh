#!/bin/bash
# Runs pjdfstest (https://github.com/pjd/pjdfstest, the POSIX conformance suite of FreeBSD,
# also used for Linux file systems) on a throw-away medvfs mount. CI does not run it; an
# engineer runs it after changing the file system's semantics or permissions.
#
#   tests/pjdfstest.sh PJDFSTEST_DIR [TEST...]
#
# PJDFSTEST_DIR is a pjdfstest checkout built outside this tree:
#   git clone https://github.com/pjd/pjdfstest /work/pjdfstest-src
#   cd /work/pjdfstest-src && autoreconf -ifs && ./configure && make
# (Debian packages: autoconf automake libtool perl; prove comes with perl.)
# TEST names directories or files under PJDFSTEST_DIR/tests, e.g. `open truncate ftruncate` or
# `open/06.t`; without any, the whole suite runs (about 8,800 checks, tens of minutes).
#
# It needs root (pjdfstest switches users and makes device nodes). It creates an archive
# (medvfs init with MEDVFS_PASSPHRASE and --kdf-cost fast) in a fresh directory under /tmp,
# mounts it with the options below, runs `prove -rv` over the tests from inside the mount,
# unmounts, removes the directory and prints prove's summary: the failed tests and their
# numbers. The whole output of prove goes to a log file (its name is printed).
#
# Settings (environment):
#   MEDVFS           the medvfs binary. Default: build/tools/medvfs beside this script.
#   MOUNT_OPTIONS    the -o list. Default: allow_other,default_permissions. Run it also with
#                    MOUNT_OPTIONS=allow_other (the daemon's own checks on top of the kernel's).
#   FILE_TIMEOUT     seconds one .t file may take before it is stopped (and fails). Default: 300.
#   LOG              where prove's output goes. Default: /tmp/medvfs-pjdfstest-<time>.log.
#   KEEP=1           keep the archive directory for a look afterwards (it is unmounted anyway).
# Exit status: prove's (0 when every test passed), 2 for a usage or set-up error.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
pjd=${1:-}
if [[ -z $pjd || $pjd == -h || $pjd == --help ]]; then
  sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'
  exit 2
fi
shift
pjd=$(cd "$pjd" && pwd)
if [[ ! -x $pjd/pjdfstest || ! -d $pjd/tests ]]; then
  echo "pjdfstest.sh: $pjd holds no built pjdfstest (run autoreconf -ifs && ./configure && make there)" >&2
  exit 2
fi
if [[ $(id -u) -ne 0 ]]; then
  echo "pjdfstest.sh: pjdfstest must run as root" >&2
  exit 2
fi
command -v prove >/dev/null || { echo "pjdfstest.sh: prove (perl) is missing" >&2; exit 2; }
medvfs=${MEDVFS:-$here/../build/tools/medvfs}
[[ -x $medvfs ]] || { echo "pjdfstest.sh: no medvfs binary at $medvfs (set MEDVFS)" >&2; exit 2; }
medvfs=$(cd "$(dirname "$medvfs")" && pwd)/$(basename "$medvfs")
options=${MOUNT_OPTIONS:-allow_other,default_permissions}
timeout_s=${FILE_TIMEOUT:-300}
log=${LOG:-/tmp/medvfs-pjdfstest-$(date +%Y%m%dT%H%M%S)-${options//[^a-z_]/-}.log}

tests=()
if [[ $# -eq 0 ]]; then
  tests=("$pjd/tests")
else
  for t in "$@"; do
    [[ -e $pjd/tests/$t ]] || { echo "pjdfstest.sh: no test $t in $pjd/tests" >&2; exit 2; }
    tests+=("$pjd/tests/$t")
  done
fi

work=$(mktemp -d /tmp/medvfs-pjdfstest.XXXXXX)
chmod 0755 "$work"  # pjdfstest's other users must reach the mount
mounted=0
cleanup() {
  cd /
  if [[ $mounted -eq 1 ]]; then
    "$medvfs" umount "$work/mnt" >/dev/null 2>&1 || fusermount3 -u -z "$work/mnt" || true
  fi
  if [[ ${KEEP:-0} == 1 ]]; then
    echo "kept $work"
  else
    rm -rf "$work"
  fi
}
trap cleanup EXIT

export MEDVFS_PASSPHRASE=pjdfstest
"$medvfs" init "$work/archive" --kdf-cost fast >/dev/null
mkdir "$work/mnt"
"$medvfs" mount "$work/archive" "$work/mnt" -o "$options"
mounted=1
chmod 0755 "$work/mnt"
echo "medvfs mounted with -o $options at $work/mnt ($(grep " $work/mnt " /proc/mounts | awk '{print $4}'))"
echo "running prove -rv on ${tests[*]#"$pjd/tests/"} (log: $log)"

cd "$work/mnt"
status=0
prove -rv --timer --exec "timeout -k 10 $timeout_s sh" "${tests[@]}" >"$log" 2>&1 || status=$?
cd /

# prove's own summary: from "Test Summary Report" (only when something failed) to "Result:".
echo
if grep -q '^Test Summary Report' "$log"; then
  sed -n '/^Test Summary Report/,$p' "$log"
else
  grep -E '^(Files=|Result:)' "$log" || tail -n 5 "$log"
fi
exit "$status"
