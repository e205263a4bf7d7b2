#!/usr/bin/env bash
# What the test suite needs from the machine, checked once before the tests that need it
# (registered as CTest fixtures in tests/CMakeLists.txt). A missing piece fails here, loudly,
# and every test that REQUIRES the fixture is then not run, which fails ctest too: a broken
# install step can never pass CI half-empty.
#
#   check_prerequisites.sh samples [fuse]
#     samples   python3-pydicom's sample DICOM files, the dcmtk tools and python3
#     fuse      a FUSE device this user can open read-write, and fusermount3
#
# MEDVFS_TEST_FUSE_DEVICE (default /dev/fuse) and MEDVFS_TEST_DICOM_SAMPLES (default the
# python3-pydicom directory) name other places to check: the tests of this script use them to
# see it fail.
set -u

samples="${MEDVFS_TEST_DICOM_SAMPLES:-/usr/lib/python3/dist-packages/pydicom/data/test_files}"
device="${MEDVFS_TEST_FUSE_DEVICE:-/dev/fuse}"
missing=0
fail() {
  echo "prerequisite missing: $*" >&2
  missing=1
}

check_samples() {
  if [[ ! -d "$samples" ]]; then
    fail "$samples (python3-pydicom's sample DICOM files) does not exist; run tools/install-deps.sh"
    return
  fi
  # The sample files the tests name (the others iterate over the whole directory).
  local name
  for name in CT_small.dcm ExplVR_BigEnd.dcm ExplVR_BigEndNoMeta.dcm ExplVR_LitEndNoMeta.dcm \
      GDCMJ2K_TextGBR.dcm JPEG2000.dcm JPGExtended.dcm MR_small.dcm MR_small_RLE.dcm \
      MR_small_bigendian.dcm MR_small_implicit.dcm MR_small_jp2klossless.dcm \
      MR_small_jpeg_ls_lossless.dcm MR_truncated.dcm SC_rgb_dcmtk_+eb+cy+s2.dcm SC_rgb_rle.dcm \
      SC_rgb_rle_16bit_2frame.dcm SC_rgb_rle_2frame.dcm SC_rgb_rle_32bit.dcm \
      SC_rgb_rle_32bit_2frame.dcm SC_rgb_small_odd.dcm SC_ybr_full_422_uncompressed.dcm \
      image_dfl.dcm liver_1frame.dcm nested_priv_SQ.dcm priv_SQ.dcm reportsi.dcm rtdose.dcm \
      rtdose_rle.dcm rtplan.dcm rtstruct.dcm test-SR.dcm waveform_ecg.dcm; do
    [[ -r "$samples/$name" ]] || fail "sample DICOM file $name is not in $samples; run tools/install-deps.sh"
  done
  local tool
  for tool in dcmdump dcmodify dcmconv dump2dcm storescu echoscu dcmcjpeg dcmcjpls dcmcrle \
      python3; do
    command -v "$tool" >/dev/null 2>&1 || fail "$tool is not installed; run tools/install-deps.sh"
  done
}

check_fuse() {
  # Opening the device read-write is what a mount does first; it fails without the device node,
  # without the permission, and in a container that was not given the device.
  if [[ ! -c "$device" ]] ||
     ! python3 -c 'import os, sys; os.close(os.open(sys.argv[1], os.O_RDWR))' "$device" 2>/dev/null; then
    fail "$device cannot be opened read-write; the mount tests need FUSE (a VM, or a container run with --device /dev/fuse --cap-add SYS_ADMIN)"
  fi
  command -v fusermount3 >/dev/null 2>&1 || fail "fusermount3 is not installed (package fuse3); run tools/install-deps.sh"
}

[[ $# -gt 0 ]] || set -- usage
for what in "$@"; do
  case "$what" in
    samples) check_samples ;;
    fuse) check_fuse ;;
    *)
      echo "usage: $0 samples|fuse..." >&2
      exit 2
      ;;
  esac
done
if [[ $missing -ne 0 ]]; then
  echo "the tests that need these are not run; install what is missing and run ctest again" >&2
  exit 1
fi
echo "every prerequisite is there: $*"
