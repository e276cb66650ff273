#!/usr/bin/env bash
# Install (Debian) and start a local PostgreSQL for the store tests, with a `ticketflow` login.
# Idempotent: safe to run again. The tests find it at TICKETFLOW_TEST_PG_URL (default below).
set -euo pipefail
if ! command -v pg_ctlcluster >/dev/null 2>&1; then
  apt-get update -q
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q postgresql
fi
version=$(ls /usr/lib/postgresql | sort -n | tail -1)
if ! pg_lsclusters -h | grep -q .; then
  pg_createcluster "$version" main
fi
cluster=$(pg_lsclusters -h | head -1 | awk '{print $1" "$2}')
if ! pg_lsclusters -h | head -1 | grep -q online; then
  pg_ctlcluster $cluster start
fi
su postgres -c "psql -q -v ON_ERROR_STOP=1" <<'SQL'
DO $$ BEGIN
  IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'ticketflow') THEN
    CREATE ROLE ticketflow LOGIN SUPERUSER PASSWORD 'ticketflow';
  END IF;
END $$;
SQL
echo "PostgreSQL $version ready: postgresql+psycopg://ticketflow:ticketflow@127.0.0.1:5432/postgres"
