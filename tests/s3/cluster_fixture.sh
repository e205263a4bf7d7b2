#!/usr/bin/env bash
# The CTest fixture of the S3 tests (tests/s3/CMakeLists.txt): one Ceph cluster
# (tests/s3/ceph_cluster.sh) for the whole test run.
#
#   cluster_fixture.sh start DIR   stops and removes what an aborted earlier run left in DIR,
#                                  then starts the cluster in DIR and prints the path of its
#                                  env file (DIR/env)
#   cluster_fixture.sh stop DIR    stops the cluster by the PIDs in DIR/pids and removes DIR
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)

die() {
  echo "cluster_fixture: $*" >&2
  exit 1
}

# Keeps in DIR/pids only the processes that still are this cluster's daemons (their command
# line names DIR/ceph.conf): the PID of a daemon of an aborted run may belong to another
# process by now, which must not be killed.
keep_own_pids() {
  local dir=$1 pid name
  [[ -f "$dir/pids" ]] || return 0
  local kept=()
  while read -r pid name; do
    [[ "$pid" =~ ^[0-9]+$ ]] || continue
    if [[ -r "/proc/$pid/cmdline" ]] &&
      tr '\0' ' ' <"/proc/$pid/cmdline" | grep -qF -- "$dir/ceph.conf"; then
      kept+=("$pid $name")
    fi
  done <"$dir/pids"
  if ((${#kept[@]} == 0)); then
    : >"$dir/pids"
  else
    printf '%s\n' "${kept[@]}" >"$dir/pids"
  fi
}

stop() {
  local dir=$1
  [[ -e "$dir" ]] || return 0
  dir=$(cd "$dir" && pwd)
  keep_own_pids "$dir"
  "$here/ceph_cluster.sh" stop "$dir"
}

[[ $# == 2 ]] || die "usage: $0 start DIR | stop DIR"
case "$1" in
  start)
    if [[ -e "$2" ]]; then
      echo "cluster_fixture: stopping and removing the cluster an earlier run left in $2" >&2
      stop "$2"
    fi
    "$here/ceph_cluster.sh" start "$2"
    ;;
  stop)
    stop "$2"
    ;;
  *)
    die "usage: $0 start DIR | stop DIR"
    ;;
esac
