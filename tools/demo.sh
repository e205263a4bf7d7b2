#!/usr/bin/env bash
# A short tour of medvfs on a throw-away archive: create it, mount it, save a DICOM file twice
# the ordinary way, browse its history, and look at the archive's statistics.
#
# Uses the build in ./build (or $MEDVFS_BUILD_DIR). Everything happens in a temporary
# directory that is removed at the end.
set -euo pipefail

root="$(cd "$(dirname "$0")/.." && pwd)"
build="${MEDVFS_BUILD_DIR:-$root/build}"
bin="$build/tools/medvfs"
if [[ ! -x "$bin" ]]; then
  echo "demo: $bin not found; build first: cmake -S . -B build && cmake --build build -j2 --target medvfs mount.medvfs" >&2
  exit 1
fi
if [[ ! -r /dev/fuse ]]; then
  echo "demo: /dev/fuse is not available; run the demo where FUSE works (not in a plain container)" >&2
  exit 1
fi
sample="$(/usr/bin/python3 -c 'from pydicom.data import get_testdata_file as f; print(f("CT_small.dcm"))' 2>/dev/null || true)"
[[ -r "$sample" ]] || sample=/usr/lib/python3/dist-packages/pydicom/data/test_files/CT_small.dcm
if [[ ! -r "$sample" ]]; then
  echo "demo: the pydicom sample CT_small.dcm is missing; run tools/install-deps.sh" >&2
  exit 1
fi

work="$(mktemp -d "${TMPDIR:-/tmp}/medvfs-demo.XXXXXX")"
cleanup() {
  cd /
  if mountpoint -q "$work/mnt" 2>/dev/null; then
    "$bin" umount "$work/mnt" >/dev/null 2>&1 || fusermount3 -u -z "$work/mnt" || true
  fi
  rm -rf "$work"
}
trap cleanup EXIT
cd "$work"

# The demo's key. Real archives take a passphrase at a prompt, or from a file or this variable.
export MEDVFS_PASSPHRASE=demo
# The throw-away archive's rollback high-water mark stays in the work directory too.
export MEDVFS_STATE_DIR="$work/state"
medvfs() { "$bin" "$@"; }

if [[ -t 1 ]]; then bold=$'\033[1m' plain=$'\033[0m'; else bold='' plain=''; fi
say() { printf '\n%s# %s%s\n' "$bold" "$*" "$plain"; }
run() {
  printf '%s$ %s%s\n' "$bold" "$*" "$plain"
  "$@"
}

say "Create an encrypted archive (--kdf-cost fast only because this is a demo)"
run medvfs init archive --kdf-cost fast

say "Mount it"
run mkdir mnt
run medvfs mount archive mnt

say "Save a CT image, then edit it in place the way DICOM tools do"
run cp "$sample" mnt/CT_small.dcm
run dcmodify -nb -m "PatientName=Demo^Patient" mnt/CT_small.dcm

say "Every save is a version, browsable as plain files (@version is hidden from ls and find)"
run ls mnt
run ls mnt/@version/CT_small.dcm/
run dcmdump +P PatientName mnt/@version/CT_small.dcm/v1 mnt/CT_small.dcm

say "The file's history (2! marks a new content under the same SOPInstanceUID)"
run medvfs log mnt/CT_small.dcm

say "DICOM tags as plain files, per version, without a DICOM tool"
run cat mnt/.meta/CT_small.dcm/tags/PatientName mnt/@version/CT_small.dcm/.meta/v1/tags/PatientName
run getfattr -n user.dicom.Modality mnt/CT_small.dcm
run medvfs note mnt/CT_small.dcm "checked by the demo"
run ls -R mnt/@patients

say "What changed between the two versions: tags, SOPInstanceUID, pixels; and a picture"
run medvfs diff mnt/CT_small.dcm 1 current --png diff.png
run cat mnt/@version/CT_small.dcm/.meta/v2/diff

say "What the archive holds, and what it stores"
run medvfs stats archive

say "On disk, names and content are encrypted"
if run grep -rla -e CT_small -e "Demo^Patient" archive; then
  echo "demo: a patient or file name was found in the archive directory" >&2
  exit 1
fi
echo "(no match: neither the file name nor the patient name appears in archive/)"

say "Unmount; the history stays readable with the key"
run medvfs umount mnt
printf '%s$ %s%s\n' "$bold" "medvfs cat archive::/CT_small.dcm --version 1 | cmp - CT_small.dcm" "$plain"
medvfs cat archive::/CT_small.dcm --version 1 | cmp - "$sample" && echo "(identical: version 1 is the original file)"

say "Who did what: the audit log, hash-chained inside the archive"
run medvfs audit archive --path /CT_small.dcm
run medvfs audit archive --verify

say "Every stored byte checked, without mounting"
run medvfs verify archive
