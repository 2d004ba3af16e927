#!/usr/bin/env bash
# s3s-fs standing in for MinIO: the keys from the same secrets MinIO reads, the
# bucket `imgcrawl` made as a directory (minio-init's `mc mb`).
set -euo pipefail
mkdir -p /data/imgcrawl
exec s3s-fs --host 0.0.0.0 --port 9000 \
  --access-key "$(cat /run/secrets/s3-access-key)" \
  --secret-key "$(cat /run/secrets/s3-secret-key)" /data
