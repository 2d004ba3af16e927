#!/usr/bin/env bash
# Writes the compose stack's secrets into infra/compose/secrets/ (ignored by git):
# random passwords and tokens, and the files built from them. Existing files are
# kept, so running it again changes nothing; delete a file to rotate that secret
# (docs/deployment.md, "Secrets").
#
#   infra/compose/make-secrets.sh [DIR]
#
# The directory is 0700; the files are 0644 so that the containers' non-root users
# (imgcrawl 10001, postgres, nats, grafana) can read their bind-mounted copies.
set -euo pipefail
dir="${1:-$(dirname "${BASH_SOURCE[0]}")/secrets}"
mkdir -p "$dir"
chmod 0700 "$dir"

rand() { head -c 48 /dev/urandom | base64 | tr -dc 'A-Za-z0-9' | head -c "${1:-32}"; }
put() { # put NAME CONTENT: writes the file unless it exists
  [ -e "$dir/$1" ] && return 0
  umask 022
  printf '%s' "$2" > "$dir/$1.tmp" && mv "$dir/$1.tmp" "$dir/$1"
}

put pg-password "$(rand 32)"
put nats-password "$(rand 32)"
put s3-access-key "imgcrawl$(rand 12)"
put s3-secret-key "$(rand 40)"
put api-token "$(rand 40)"
put ha-token "$(rand 40)"
put grafana-admin-password "$(rand 24)"

pg="$(cat "$dir/pg-password")"
nats="$(cat "$dir/nats-password")"
put nats-auth.conf "authorization {
  users: [ { user: imgcrawl, password: \"$nats\" } ]
}
"
put imgcrawl.toml "# NATS credentials of every imgcrawl container (IMGCRAWL_CONFIG)
[bus]
user = \"imgcrawl\"
password = \"$nats\"

[ha]
token_file = \"/run/secrets/ha-token\"
"
# the variables the binary reads only from its environment: the S3 keys (the API
# has no file setting for them) and the PostgreSQL password (sqlx ignores a pgpass
# file that its group may read, and a non-root container reads secrets by group)
put imgcrawl.env "AWS_ACCESS_KEY_ID=$(cat "$dir/s3-access-key")
AWS_SECRET_ACCESS_KEY=$(cat "$dir/s3-secret-key")
PGPASSWORD=$pg
"
chmod 0644 "$dir"/*
echo "secrets in $dir" >&2
