#!/usr/bin/env bash
# A real single-node Ceph cluster with a RADOS Gateway (S3) for the tests of the S3 tier, from
# Debian's packages (ceph-mon, ceph-mgr, ceph-osd, radosgw; tools/install-deps.sh installs
# them), without systemd, in a directory of its own, on 127.0.0.1 only, with cephx.
#
#   ceph_cluster.sh start DIR   starts it (DIR must not exist or be empty); when it is ready,
#                               writes DIR/env (shell assignments: MEDVFS_S3_ENDPOINT,
#                               AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_DEFAULT_REGION)
#                               and prints its path
#   ceph_cluster.sh stop DIR    stops the daemons it started (by the PIDs in DIR/pids, never
#                               by name) and removes DIR
#
# The OSD keeps its data in a sparse 10 GiB file (bluestore); the daemons take about 1 GB of
# memory. Ports are chosen free at start. Logs stay in DIR/log until stop; a failed start
# prints the tail of each.
set -euo pipefail

readonly kReadySeconds=120

die() {
  echo "ceph_cluster: $*" >&2
  exit 1
}

free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

show_logs() {
  local dir=$1
  for log in "$dir"/log/*.log; do
    [[ -f "$log" ]] || continue
    echo "--- $log (last 20 lines)" >&2
    tail -n 20 "$log" >&2
  done
}

# Runs a daemon in the foreground of a background job, recording its PID.
spawn() {
  local dir=$1 name=$2
  shift 2
  "$@" >"$dir/log/$name.out" 2>&1 &
  echo "$! $name" >>"$dir/pids"
}

stop_cluster() {
  local dir=$1
  [[ -f "$dir/pids" ]] || return 0
  # The gateway first, the monitor last; TERM, then KILL what is left after 10 s.
  local pids
  pids=$(tac "$dir/pids" | awk '{print $1}')
  for pid in $pids; do kill -TERM "$pid" 2>/dev/null || true; done
  for _ in $(seq 100); do
    local alive=0
    for pid in $pids; do kill -0 "$pid" 2>/dev/null && alive=1; done
    ((alive == 0)) && break
    sleep 0.1
  done
  for pid in $pids; do kill -KILL "$pid" 2>/dev/null || true; done
  rm -f "$dir/pids"
}

start_cluster() {
  local dir=$1
  if [[ -e "$dir" && -n "$(ls -A "$dir" 2>/dev/null)" ]]; then die "$dir is not empty"; fi
  for tool in ceph-mon ceph-mgr ceph-osd radosgw radosgw-admin ceph ceph-authtool monmaptool; do
    command -v "$tool" >/dev/null || die "$tool is missing: run tools/install-deps.sh"
  done
  mkdir -p "$dir"
  dir=$(cd "$dir" && pwd)
  mkdir -p "$dir"/{log,run,mon/a,mgr/x,osd/0,rgw}
  local fsid mon_port rgw_port osd_uuid
  fsid=$(uuidgen)
  osd_uuid=$(uuidgen)
  mon_port=$(free_port)
  rgw_port=$(free_port)
  local conf=$dir/ceph.conf
  cat >"$conf" <<EOF
[global]
fsid = $fsid
mon host = v2:127.0.0.1:$mon_port
mon initial members = a
public addr = 127.0.0.1
ms bind ipv6 = false
auth cluster required = cephx
auth service required = cephx
auth client required = cephx
keyring = $dir/keyring
run dir = $dir/run
admin socket = $dir/run/\$name.asok
log file = $dir/log/\$name.log
log to stderr = false
err to stderr = true
osd pool default size = 1
osd pool default min size = 1
osd pool default pg num = 8
osd pool default pgp num = 8
osd crush chooseleaf type = 0
mon allow pool size one = true
mon allow pool delete = true
mon warn on pool no redundancy = false
mon max pg per osd = 1000
mon data avail warn = 1
mon data avail crit = 0
[mon.a]
mon data = $dir/mon/a
[mgr.x]
mgr data = $dir/mgr/x
keyring = $dir/mgr/x/keyring
[osd]
osd data = $dir/osd/\$id
keyring = $dir/osd/\$id/keyring
osd objectstore = bluestore
bluestore block create = true
bluestore block size = 10737418240
bluestore fsck on mount = false
osd memory target = 939524096
osd max object name len = 256
[client.rgw.gw]
rgw frontends = beast endpoint=127.0.0.1:$rgw_port tcp_nodelay=1
rgw data = $dir/rgw
keyring = $dir/rgw/keyring
rgw enable usage log = false
EOF
  # Keys: the monitor's, the admin's (imported into the monitor's), then each daemon's.
  ceph-authtool --create-keyring "$dir/mon.keyring" --gen-key -n mon. --cap mon 'allow *' >/dev/null
  ceph-authtool --create-keyring "$dir/keyring" --gen-key -n client.admin \
    --cap mon 'allow *' --cap osd 'allow *' --cap mgr 'allow *' --cap mds 'allow *' >/dev/null
  ceph-authtool "$dir/mon.keyring" --import-keyring "$dir/keyring" >/dev/null
  monmaptool --create --addv a "[v2:127.0.0.1:$mon_port]" --fsid "$fsid" "$dir/monmap" >/dev/null
  ceph-mon -c "$conf" --mkfs -i a --monmap "$dir/monmap" --keyring "$dir/mon.keyring"
  spawn "$dir" mon ceph-mon -f -c "$conf" -i a

  local ceph=(ceph -c "$conf" --connect-timeout 30)
  "${ceph[@]}" auth get-or-create mgr.x mon 'allow profile mgr' osd 'allow *' mds 'allow *' \
    >"$dir/mgr/x/keyring"
  spawn "$dir" mgr ceph-mgr -f -c "$conf" -i x

  local osd_id
  osd_id=$("${ceph[@]}" osd new "$osd_uuid")
  [[ "$osd_id" == 0 ]] || die "the OSD got id $osd_id, not 0"
  "${ceph[@]}" auth get-or-create osd.0 mon 'allow profile osd' mgr 'allow profile osd' \
    osd 'allow *' >"$dir/osd/0/keyring"
  ceph-osd -c "$conf" -i 0 --mkfs --osd-uuid "$osd_uuid" >"$dir/log/osd-mkfs.out" 2>&1 ||
    { cat "$dir/log/osd-mkfs.out" >&2; die "the OSD's mkfs failed"; }
  spawn "$dir" osd ceph-osd -f -c "$conf" -i 0

  "${ceph[@]}" auth get-or-create client.rgw.gw mon 'allow rw' osd 'allow rwx' \
    >"$dir/rgw/keyring"
  spawn "$dir" rgw radosgw -f -c "$conf" -n client.rgw.gw

  # Ready: the OSD is up and the gateway answers an anonymous request.
  local deadline=$((SECONDS + kReadySeconds))
  until "${ceph[@]}" osd stat 2>/dev/null | grep -q "1 up"; do
    ((SECONDS < deadline)) || { show_logs "$dir"; die "the OSD did not come up"; }
    sleep 0.5
  done
  until curl -s -o /dev/null "http://127.0.0.1:$rgw_port/"; do
    ((SECONDS < deadline)) || { show_logs "$dir"; die "the gateway did not answer"; }
    sleep 0.5
  done
  local access secret
  access=$(head -c 12 /dev/urandom | od -An -tx1 | tr -d ' \n' | tr a-f A-F)
  secret=$(head -c 24 /dev/urandom | od -An -tx1 | tr -d ' \n')
  radosgw-admin -c "$conf" -n client.admin user create --uid medvfs-test \
    --display-name "medvfs test" --access-key "$access" --secret "$secret" >/dev/null
  cat >"$dir/env" <<EOF
MEDVFS_S3_ENDPOINT=http://127.0.0.1:$rgw_port
AWS_ACCESS_KEY_ID=$access
AWS_SECRET_ACCESS_KEY=$secret
AWS_DEFAULT_REGION=default
EOF
  echo "$dir/env"
}

case "${1:-}" in
  start)
    [[ $# == 2 ]] || die "usage: $0 start DIR"
    # Whatever fails on the way (set -e, die), the daemons started so far are stopped.
    trap 'status=$?; if ((status != 0)); then stop_cluster "$2"; fi' EXIT
    start_cluster "$2"
    ;;
  stop)
    [[ $# == 2 ]] || die "usage: $0 stop DIR"
    stop_cluster "$2"
    rm -rf "$2"
    ;;
  *)
    die "usage: $0 start DIR | stop DIR"
    ;;
esac
