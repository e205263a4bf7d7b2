#!/usr/bin/env bash
# Starts the test Ceph cluster (tests/s3/ceph_cluster.sh), checks what the S3 tier's tests will
# rely on, and stops it: the gateway answers SigV4-signed requests made with curl's own signing
# (as libcurl's CURLOPT_AWS_SIGV4 will make them), a bucket with Object Lock takes an object
# under COMPLIANCE retention, and the gateway refuses to delete that object version.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
# Under ctest the run's one cluster (fixture s3_cluster) is used; run alone, the script starts
# a cluster of its own and stops it again.
if [[ -n "${MEDVFS_S3_ENV_FILE:-}" ]]; then
  env_file=$MEDVFS_S3_ENV_FILE
  [[ -f "$env_file" ]] || { echo "cluster_smoke: no $env_file (did s3.cluster_start fail?)" >&2; exit 1; }
else
  dir=$(mktemp -d /tmp/medvfs-ceph.XXXXXX)
  rmdir "$dir"
  trap '"$here/ceph_cluster.sh" stop "$dir"' EXIT
  env_file=$("$here/ceph_cluster.sh" start "$dir")
fi
# shellcheck disable=SC1090
source "$env_file"
# curl 7.88's SigV4 leaves out x-amz-content-sha256, which the gateway requires: sent here.
s3=(curl -sS --aws-sigv4 "aws:amz:$AWS_DEFAULT_REGION:s3"
  --user "$AWS_ACCESS_KEY_ID:$AWS_SECRET_ACCESS_KEY" -H "x-amz-content-sha256: UNSIGNED-PAYLOAD")
bucket="medvfs-smoke-$$-$RANDOM"
fail() {
  echo "cluster_smoke: $*" >&2
  exit 1
}
code=$("${s3[@]}" -o /dev/null -w '%{http_code}' "$MEDVFS_S3_ENDPOINT/")
[[ "$code" == 200 ]] || fail "listing the buckets gave HTTP $code"
code=$("${s3[@]}" -o /dev/null -w '%{http_code}' -X PUT \
  -H "x-amz-bucket-object-lock-enabled: true" "$MEDVFS_S3_ENDPOINT/$bucket")
[[ "$code" == 200 ]] || fail "creating a bucket with Object Lock gave HTTP $code"
until_date=$(date -u -d '+1 day' +%Y-%m-%dT%H:%M:%SZ)
headers=$(mktemp)
code=$(echo "sealed pack bytes" | "${s3[@]}" -o /dev/null -D "$headers" -w '%{http_code}' -X PUT \
  --data-binary @- -H "x-amz-object-lock-mode: COMPLIANCE" \
  -H "x-amz-object-lock-retain-until-date: $until_date" "$MEDVFS_S3_ENDPOINT/$bucket/pack-1")
[[ "$code" == 200 ]] || fail "putting an object under COMPLIANCE retention gave HTTP $code"
version=$(grep -i '^x-amz-version-id:' "$headers" | awk '{print $2}' | tr -d '\r')
rm -f "$headers"
[[ -n "$version" ]] || fail "the object got no version id"
code=$("${s3[@]}" -o /dev/null -w '%{http_code}' -X DELETE \
  "$MEDVFS_S3_ENDPOINT/$bucket/pack-1?versionId=$version")
[[ "$code" == 403 ]] || fail "deleting a version under COMPLIANCE retention gave HTTP $code, not 403"
body=$("${s3[@]}" "$MEDVFS_S3_ENDPOINT/$bucket/pack-1?versionId=$version")
[[ "$body" == "sealed pack bytes" ]] || fail "the object does not read back"
echo "cluster_smoke: the gateway signs, locks and refuses as the S3 tier needs"
