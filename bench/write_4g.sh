#!/usr/bin/env bash
# write_4g.sh: the write acceptance benchmark of medvfs.
#
# Writes SIZE bytes of incompressible data into one file through a medvfs mount and, in the
# same run and on the same disk, into a plain directory; reports the throughput of both and the
# medvfs daemon's peak resident memory, which must stay under 256 MiB whatever the file size,
# also while the file is read back.
#
# Usage:
#   bench/write_4g.sh [MEDVFS_BINARY [SIZE]]
#     MEDVFS_BINARY  the built medvfs program.             Default: ./build/tools/medvfs
#     SIZE           bytes per run, a whole number of MiB, with an optional K, M, G or T
#                    (binary) suffix.                       Default: 4G
#
# Environment:
#   MEDVFS_PASSPHRASE  the archive's passphrase.            Default: a random one for this run
#   BENCH_DIR          where the temporary archive, mount point and plain directory go; they
#                      share one disk.                      Default: $TMPDIR, else /var/tmp
#   ROUNDS             interleaved rounds (plain, medvfs, plain, medvfs, ...); the table shows
#                      the median.                          Default: 2
#   RSS_LIMIT_MIB      the peak RSS limit.                  Default: 256
#   WARMUP_MIB         an untimed write into each target before the first round (the first
#                      write after set-up is often an outlier on virtual disks); 0 for none.
#                                                           Default: 256
#
# What it does:
#   1. creates a temporary directory under BENCH_DIR, runs `medvfs init ARCHIVE` and
#      `medvfs mount ARCHIVE MNT` (which returns once mounted; the daemon writes its pid to
#      ARCHIVE/medvfs.pid);
#   2. measures the data source alone (AES-256-CTR keystream from openssl, a fresh random key
#      per run, so that no two runs or parts of a file share content and deduplication cannot
#      flatter medvfs; /dev/urandom when openssl is missing);
#   3. per round, writes SIZE bytes with `dd bs=1M conv=fsync` into the plain directory, then
#      into the mount, each timed from the first byte to the end of the fsync, and reads each
#      file back with `dd bs=1M` after dropping the page cache (root only; else warm);
#   4. reads the daemon's VmHWM (peak RSS) from /proc/PID/status before unmounting;
#   5. prints a Markdown table and writes it to bench/results/write_4g.md (next to this script).
#
# Exit status: 0 when the peak RSS is under the limit, 1 when it is not, 2 on any other failure.
# The temporary directory and the mount are removed on every exit (also on failure or Ctrl-C);
# the only process it may stop is the daemon of its own temporary archive, if that daemon does
# not exit after the unmount.
set -Eeuo pipefail
export LC_ALL=C

SCRIPT_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
readonly SCRIPT_DIR
readonly RESULTS_FILE="${SCRIPT_DIR}/results/write_4g.md"

medvfs_arg="${1:-./build/tools/medvfs}"
size_arg="${2:-4G}"
rounds="${ROUNDS:-2}"
rss_limit_mib="${RSS_LIMIT_MIB:-256}"
warmup_mib="${WARMUP_MIB:-256}"
base_dir="${BENCH_DIR:-${TMPDIR:-/var/tmp}}"

workdir=""
archive=""
mnt=""
daemon_pid=""

log() { printf 'write_4g: %s\n' "$*" >&2; }
die() {
  log "error: $*"
  exit 2
}

# ---- clean-up: always unmount, then remove the temporary directory -------------------------

is_mounted() { [[ -n "$mnt" ]] && mountpoint -q -- "$mnt" 2>/dev/null; }

# True if $1 is a live medvfs process (the pid read from our own archive's pid file).
is_our_daemon() {
  local pid="$1" cmdline
  [[ "$pid" =~ ^[0-9]+$ ]] && [[ -r "/proc/${pid}/cmdline" ]] || return 1
  cmdline="$(tr '\0' ' ' <"/proc/${pid}/cmdline" 2>/dev/null)" || return 1
  [[ "$cmdline" == *medvfs* ]]
}

wait_for_exit() {
  local pid="$1" tries="$2"
  while ((tries-- > 0)); do
    is_our_daemon "$pid" || return 0
    sleep 0.1
  done
  return 1
}

# shellcheck disable=SC2317  # invoked by the EXIT trap
cleanup() {
  local status=$?
  trap - EXIT INT TERM ERR
  set +e
  if is_mounted; then
    log "unmounting ${mnt}"
    timeout 120 "$medvfs" umount "$mnt" </dev/null ||
      fusermount3 -u -- "$mnt" 2>/dev/null ||
      fusermount3 -u -z -- "$mnt" 2>/dev/null ||
      umount -l -- "$mnt" 2>/dev/null
  fi
  if [[ -n "$daemon_pid" ]] && ! wait_for_exit "$daemon_pid" 300; then
    log "daemon ${daemon_pid} still running 30 s after unmount: sending SIGTERM"
    kill -TERM "$daemon_pid" 2>/dev/null
    wait_for_exit "$daemon_pid" 100 || log "daemon ${daemon_pid} did not exit"
  fi
  if [[ -n "$workdir" && -d "$workdir" ]]; then
    if is_mounted; then
      log "${mnt} is still mounted: leaving ${workdir} in place"
    else
      rm -rf -- "$workdir"
    fi
  fi
  exit "$status"
}
trap cleanup EXIT
trap 'log "unexpected failure at line ${LINENO}"; exit 2' ERR
trap 'exit 130' INT
trap 'exit 143' TERM

# ---- arguments and checks ---------------------------------------------------------------------

# Parses "4G", "512M", "1073741824" into bytes (binary suffixes).
parse_size() {
  local s="${1^^}" n unit
  [[ "$s" =~ ^([0-9]+)([KMGT]?)(I?B)?$ ]] || return 1
  n="${BASH_REMATCH[1]}"
  unit="${BASH_REMATCH[2]}"
  case "$unit" in
    K) echo $((n << 10)) ;;
    M) echo $((n << 20)) ;;
    G) echo $((n << 30)) ;;
    T) echo $((n << 40)) ;;
    *) echo "$n" ;;
  esac
}

size_bytes="$(parse_size "$size_arg")" || die "bad SIZE '${size_arg}' (e.g. 4G, 512M)"
((size_bytes > 0 && size_bytes % (1 << 20) == 0)) ||
  die "SIZE must be a positive whole number of MiB, got '${size_arg}'"
size_mib=$((size_bytes >> 20))
[[ "$rounds" =~ ^[1-9][0-9]*$ ]] || die "ROUNDS must be a positive integer, got '${rounds}'"
[[ "$rss_limit_mib" =~ ^[1-9][0-9]*$ ]] || die "RSS_LIMIT_MIB must be a positive integer"
[[ "$warmup_mib" =~ ^[0-9]+$ ]] || die "WARMUP_MIB must be a non-negative integer"

[[ -x "$medvfs_arg" && ! -d "$medvfs_arg" ]] ||
  die "medvfs binary '${medvfs_arg}' not found or not executable (build it, or pass its path)"
medvfs="$(cd "$(dirname "$medvfs_arg")" && pwd)/$(basename "$medvfs_arg")"
readonly medvfs

for tool in dd mountpoint timeout df awk sort; do
  command -v "$tool" >/dev/null || die "'${tool}' is required"
done
if command -v openssl >/dev/null; then
  source_name="openssl aes-256-ctr"
else
  source_name="/dev/urandom"
  log "openssl not found: using /dev/urandom, which may be slower than the disk"
fi
[[ -d "$base_dir" ]] || die "BENCH_DIR '${base_dir}' is not a directory"

# Room for one plain file at a time, every medvfs write (an archive never forgets a version)
# with 10 % overhead, and 1 GiB to spare.
need_kib=$(((size_bytes + (rounds * size_bytes + (warmup_mib << 20)) * 11 / 10 + (1 << 30)) >> 10))
avail_kib="$(df -Pk -- "$base_dir" | awk 'NR == 2 { print $4 }')"
((avail_kib >= need_kib)) ||
  die "not enough space in ${base_dir}: $((need_kib >> 20)) GiB needed, $((avail_kib >> 20)) GiB free"

if [[ -z "${MEDVFS_PASSPHRASE:-}" ]]; then
  MEDVFS_PASSPHRASE="bench-$(od -An -N16 -tx1 /dev/urandom | tr -d ' \n')"
fi
export MEDVFS_PASSPHRASE

# ---- set-up -----------------------------------------------------------------------------------

load_at_start="$(cut -d ' ' -f 1-3 /proc/loadavg)"
workdir="$(mktemp -d -- "${base_dir%/}/medvfs-write-bench.XXXXXX")"
archive="${workdir}/archive"
mnt="${workdir}/mnt"
plain="${workdir}/plain"
mkdir -p -- "$mnt" "$plain"

log "medvfs init (archive in ${workdir})"
timeout 300 "$medvfs" init "$archive" </dev/null >/dev/null || die "medvfs init failed"
log "medvfs mount"
timeout 300 "$medvfs" mount "$archive" "$mnt" </dev/null >/dev/null || die "medvfs mount failed"

for ((i = 0; i < 100; i++)); do
  is_mounted && [[ -s "${archive}/medvfs.pid" ]] && break
  sleep 0.1
done
is_mounted || die "${mnt} is not mounted after 'medvfs mount' returned"
[[ -s "${archive}/medvfs.pid" ]] || die "no daemon pid in ${archive}/medvfs.pid"
daemon_pid="$(tr -dc '0-9' <"${archive}/medvfs.pid")"
is_our_daemon "$daemon_pid" || die "pid '${daemon_pid}' in ${archive}/medvfs.pid is not a medvfs process"
log "mounted; daemon pid ${daemon_pid}"

# ---- measurement ------------------------------------------------------------------------------

# An endless incompressible stream, different on every call. It ends by SIGPIPE when its reader
# has read enough, which is not a failure.
random_stream() {
  if [[ "$source_name" == /dev/urandom ]]; then
    cat /dev/urandom || true
  else
    openssl enc -aes-256-ctr -K "$(openssl rand -hex 32)" -iv "$(openssl rand -hex 16)" \
      -in /dev/zero 2>/dev/null || true
  fi
}

now() { date +%s.%N; }

# Writes $2 MiB of fresh random data to $1 with fsync (untimed warm-up).
warmup_write() {
  set +o pipefail
  random_stream | dd of="$1" bs=1M count="$2" iflag=fullblock conv=fsync status=none ||
    die "dd into $1 failed"
  set -o pipefail
}

# Writes size_bytes of fresh random data to $1 with fsync; sets last_mbs to the throughput in
# MB/s (10^6 bytes per second).
last_mbs=""
timed_write() {
  local target="$1" t0 t1 ok=1
  t0="$(now)"
  # The generator dies of SIGPIPE when dd has read enough: only dd's status counts.
  set +o pipefail
  random_stream | dd of="$target" bs=1M count="$size_mib" iflag=fullblock conv=fsync \
    status=none || ok=0
  set -o pipefail
  t1="$(now)"
  ((ok)) || die "dd into ${target} failed"
  local written
  written="$(stat -c %s -- "$target")"
  ((written == size_bytes)) || die "${target} has ${written} bytes, expected ${size_bytes}"
  last_mbs="$(awk -v b="$size_bytes" -v t0="$t0" -v t1="$t1" \
    'BEGIN { printf "%.1f", b / (t1 - t0) / 1e6 }')"
}

# Reads $1 back with `dd bs=1M` after dropping the page cache (when we may: root); sets
# last_read_mbs to the throughput in MB/s.
last_read_mbs=""
cold_reads=1
timed_read() {
  local target="$1" t0 t1
  sync
  if [[ -w /proc/sys/vm/drop_caches ]]; then
    echo 3 >/proc/sys/vm/drop_caches
  else
    cold_reads=0
  fi
  t0="$(now)"
  dd if="$target" of=/dev/null bs=1M status=none || die "reading ${target} back failed"
  t1="$(now)"
  last_read_mbs="$(awk -v b="$size_bytes" -v t0="$t0" -v t1="$t1" \
    'BEGIN { printf "%.1f", b / (t1 - t0) / 1e6 }')"
}

# Median of the numbers given as arguments.
median() {
  printf '%s\n' "$@" | sort -g | awk '{ v[NR] = $1 } END {
    if (NR % 2) printf "%.1f", v[(NR + 1) / 2]; else printf "%.1f", (v[NR / 2] + v[NR / 2 + 1]) / 2 }'
}

vm_field() {  # vm_field PID FIELD: the value in kB of FIELD in /proc/PID/status
  awk -v f="$2:" '$1 == f { print $2 }' "/proc/$1/status"
}

log "data source alone (${source_name})"
t0="$(now)"
set +o pipefail
random_stream | dd of=/dev/null bs=1M count="$size_mib" iflag=fullblock status=none
set -o pipefail
t1="$(now)"
source_mbs="$(awk -v b="$size_bytes" -v t0="$t0" -v t1="$t1" \
  'BEGIN { printf "%.1f", b / (t1 - t0) / 1e6 }')"

if ((warmup_mib > 0)); then
  log "warm-up: ${warmup_mib} MiB into each target"
  warmup_write "${plain}/warmup.bin" "$warmup_mib"
  warmup_write "${mnt}/warmup.bin" "$warmup_mib"
fi

plain_results=()
medvfs_results=()
plain_read_results=()
medvfs_read_results=()
for ((round = 1; round <= rounds; round++)); do
  rm -f -- "${plain}"/*.bin
  sync
  log "round ${round}/${rounds}: plain directory"
  timed_write "${plain}/round${round}.bin"
  plain_results+=("$last_mbs")
  timed_read "${plain}/round${round}.bin"
  plain_read_results+=("$last_read_mbs")
  rm -f -- "${plain}/round${round}.bin"
  sync
  log "round ${round}/${rounds}: medvfs mount"
  timed_write "${mnt}/round${round}.bin"
  medvfs_results+=("$last_mbs")
  timed_read "${mnt}/round${round}.bin"
  medvfs_read_results+=("$last_read_mbs")
  is_our_daemon "$daemon_pid" || die "the medvfs daemon died during round ${round}"
  log "round ${round}: write plain ${plain_results[-1]} MB/s, medvfs ${medvfs_results[-1]} MB/s;" \
    "read back plain ${plain_read_results[-1]} MB/s, medvfs ${medvfs_read_results[-1]} MB/s;" \
    "daemon VmHWM $(($(vm_field "$daemon_pid" VmHWM) >> 10)) MiB"
done

# VmHWM is the peak RSS over the daemon's whole life: read it before the unmount ends it.
hwm_kib="$(vm_field "$daemon_pid" VmHWM)"
rss_kib="$(vm_field "$daemon_pid" VmRSS)"
[[ -n "$hwm_kib" ]] || die "cannot read VmHWM of pid ${daemon_pid}"

log "unmounting"
timeout 300 "$medvfs" umount "$mnt" </dev/null || die "medvfs umount failed"
wait_for_exit "$daemon_pid" 300 || log "daemon ${daemon_pid} still running after unmount"

# ---- report -----------------------------------------------------------------------------------

plain_mbs="$(median "${plain_results[@]}")"
medvfs_mbs="$(median "${medvfs_results[@]}")"
ratio="$(awk -v m="$medvfs_mbs" -v p="$plain_mbs" 'BEGIN { printf "%.2f", m / p }')"
plain_read_mbs="$(median "${plain_read_results[@]}")"
medvfs_read_mbs="$(median "${medvfs_read_results[@]}")"
read_ratio="$(awk -v m="$medvfs_read_mbs" -v p="$plain_read_mbs" 'BEGIN { printf "%.2f", m / p }')"
if ((cold_reads)); then read_kind="cold (page cache dropped)"; else read_kind="warm (not root)"; fi
hwm_mib="$(awk -v k="$hwm_kib" 'BEGIN { printf "%.1f", k / 1024 }')"
if ((hwm_kib < rss_limit_mib * 1024)); then verdict=PASS; else verdict=FAIL; fi

fs_type="$(df -PT -- "$workdir" | awk 'NR == 2 { print $2 }')"
medvfs_version="$("$medvfs" --version 2>/dev/null </dev/null | head -n 1 || true)"

report="$(
  printf '## medvfs write benchmark (%s)\n\n' "$(date -u +%Y-%m-%dT%H:%M:%SZ)"
  printf '| size | write MB/s plain | write MB/s medvfs | ratio | read MB/s plain |'
  printf ' read MB/s medvfs | ratio | peak RSS MiB | RSS < %s MiB |\n' "$rss_limit_mib"
  printf '|---|---|---|---|---|---|---|---|---|\n'
  printf '| %s | %s | %s | %s | %s | %s | %s | %s | %s |\n' "$size_arg" "$plain_mbs" \
    "$medvfs_mbs" "$ratio" "$plain_read_mbs" "$medvfs_read_mbs" "$read_ratio" "$hwm_mib" \
    "$verdict"
  printf '\n'
  printf -- '- one file of %s bytes per run, %s, timed to the end of fsync, then read back' \
    "$size_bytes" "\`dd bs=1M conv=fsync\`"
  printf ' %s with %s; median of %s interleaved rounds (plain, medvfs, ...); the peak RSS' \
    "$read_kind" "\`dd bs=1M\`" "$rounds"
  printf ' covers the writes and the reads\n'
  printf -- '- write MB/s per round: plain %s; medvfs %s\n' \
    "${plain_results[*]}" "${medvfs_results[*]}"
  printf -- '- read MB/s per round: plain %s; medvfs %s\n' \
    "${plain_read_results[*]}" "${medvfs_read_results[*]}"
  printf -- '- data source (%s, fresh key per run) alone: %s MB/s\n' "$source_name" "$source_mbs"
  printf -- '- daemon VmHWM %s KiB, VmRSS at the end %s KiB\n' "$hwm_kib" "${rss_kib:-?}"
  printf -- '- %s, %s, %s CPUs (load average %s at start), %s; medvfs %s\n' "$(uname -sr)" \
    "$fs_type" "$(nproc)" "$load_at_start" "$base_dir" "${medvfs_version:-(no --version)}"
)"

printf '%s\n' "$report"
mkdir -p -- "$(dirname "$RESULTS_FILE")"
printf '%s\n' "$report" >"$RESULTS_FILE"
log "written to ${RESULTS_FILE}"

[[ "$verdict" == PASS ]] || exit 1
exit 0
