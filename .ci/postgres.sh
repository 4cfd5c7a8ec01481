#!/usr/bin/env bash
# Start a local PostgreSQL server from Debian's package for the store tests, and print the
# URL of a role that may create databases (tests/test_storage.py creates one per test).
# Prints nothing, and exits 0, where no server can be started: those tests then skip with
# a message. Source of the URL: CRTCL_TEST_POSTGRESQL_URL=$(bash .ci/postgres.sh).
set -u
log=/tmp/crtcl-postgres.log
{
  if ! ls /usr/lib/postgresql/*/bin/postgres >/dev/null 2>&1; then
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
      timeout 600 apt-get update -qq && DEBIAN_FRONTEND=noninteractive timeout 600 \
        apt-get install -y -qq postgresql
    fi
  fi
  command -v pg_lsclusters >/dev/null || exit 0
  cluster=$(pg_lsclusters -h | awk 'NR==1 {print $1" "$2}')
  [ -n "$cluster" ] || exit 0
  pg_ctlcluster $cluster start || true
  for _ in $(seq 30); do
    pg_isready -q -h localhost && break
    sleep 1
  done
  pg_isready -q -h localhost || exit 0
  su postgres -c "psql -q -c \"DO \\\$\\\$ BEGIN IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'crtcl_test') THEN CREATE ROLE crtcl_test LOGIN PASSWORD 'crtcl_test' CREATEDB; END IF; END \\\$\\\$;\"" || exit 0
} >"$log" 2>&1 || exit 0
pg_isready -q -h localhost 2>/dev/null && echo "postgresql://crtcl_test:crtcl_test@localhost:5432/postgres"
exit 0
