#!/usr/bin/env bash
# PostgreSQL from Debian's packages with the official image's variables:
# POSTGRES_USER, POSTGRES_DB, POSTGRES_PASSWORD_FILE; data in $PGDATA.
set -euo pipefail
user="${POSTGRES_USER:-postgres}"
db="${POSTGRES_DB:-$user}"
mkdir -p "$PGDATA" /run/postgresql
chown -R postgres:postgres "$PGDATA" /run/postgresql
chmod 0700 "$PGDATA"
as_pg() { setpriv --reuid=postgres --regid=postgres --init-groups "$@"; }
if [ ! -s "$PGDATA/PG_VERSION" ]; then
  pw="$(mktemp)"; cat "$POSTGRES_PASSWORD_FILE" > "$pw"; chown postgres "$pw"
  as_pg initdb -D "$PGDATA" -U "$user" --pwfile="$pw" --auth-host=scram-sha-256 --auth-local=trust >/dev/null
  rm -f "$pw"
  echo "host all all 0.0.0.0/0 scram-sha-256" >> "$PGDATA/pg_hba.conf"
  as_pg pg_ctl -D "$PGDATA" -o "-c listen_addresses=''" -w start >/dev/null
  if [ "$db" != postgres ]; then as_pg psql -q -U "$user" -d postgres -c "create database \"$db\""; fi
  as_pg pg_ctl -D "$PGDATA" -m fast -w stop >/dev/null
fi
exec setpriv --reuid=postgres --regid=postgres --init-groups postgres -D "$PGDATA" -c listen_addresses='*'
