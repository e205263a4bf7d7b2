#!/usr/bin/env bash
# Installs what medvfs needs to build, test, benchmark and run, on Debian 12 (bookworm).
# Does nothing (and needs no root) when everything is already installed.
set -euo pipefail

packages=(
  cmake g++ pkg-config                     # build
  libfuse3-dev fuse3                       # FUSE (fusermount3 for unprivileged mounts)
  librocksdb-dev libssl-dev libzstd-dev    # the archive: RocksDB, OpenSSL, zstd
  libdcmtk-dev dcmtk                       # DICOM parsing; dcmodify/dcmdump for the demo
  libcli11-dev nlohmann-json3-dev          # command line, JSON
  libpng-dev libjpeg62-turbo-dev           # medvfs diff: PNG/JPEG pictures, the --png picture
  libgtest-dev libgmock-dev libbenchmark-dev  # tests and benchmarks
  python3-pydicom                          # sample DICOM files (CT_small.dcm) for the demo
  attr zstd clang-format clang-tidy        # getfattr/setfattr, zstd tool, formatting, lint
  acl rsync                                # setfacl/getfacl, rsync -aHAX: the ACL tests
  clang libclang-rt-14-dev                 # libFuzzer targets (tests/fuzz)
  fio                                      # stress test: parallel I/O jobs on a mount
  python3 gocryptfs bindfs gnuplot-nox     # bench/run: the script, its baselines, --plot
  orthanc curl                             # medvfs receive tests: a real PACS pushing studies
  ceph-mon ceph-mgr ceph-osd radosgw ceph-common uuid-runtime  # S3 tier tests: a real Ceph RGW
  libcurl4-openssl-dev libtinyxml2-dev libinih-dev  # the S3 client: HTTP + SigV4, XML, credentials
  rclone s3fs                              # bench: baselines of the S3 tier
)

missing=()
for package in "${packages[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q 'install ok installed'; then
    missing+=("$package")
  fi
done
if ((${#missing[@]} == 0)); then
  echo "install-deps: all ${#packages[@]} packages are installed"
  exit 0
fi

sudo=()
if [[ "$(id -u)" -ne 0 ]]; then
  if ! command -v sudo >/dev/null; then
    echo "install-deps: root or sudo is needed to install: ${missing[*]}; run this as root" >&2
    exit 1
  fi
  sudo=(sudo)
fi
echo "install-deps: installing ${missing[*]}"
"${sudo[@]}" apt-get update
"${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
  "${missing[@]}"
