#!/bin/sh
# Makes sure a PostgreSQL test database is reachable and prints `export TEST_POSTGRES_DSN=...`.
# Uses TEST_POSTGRES_DSN as given when set; otherwise starts the machine's PostgreSQL 15 cluster
# (pg_ctlcluster) and creates the role `wfe_test` (password `wfe_test`, CREATEDB) used by the tests.
set -eu
if [ -n "${TEST_POSTGRES_DSN:-}" ]; then
  echo "export TEST_POSTGRES_DSN='${TEST_POSTGRES_DSN}'"
  exit 0
fi
if ! command -v pg_ctlcluster >/dev/null 2>&1; then
  echo "scripts/test-postgres.sh: no pg_ctlcluster; set TEST_POSTGRES_DSN to a PostgreSQL server" >&2
  exit 0
fi
as_postgres() {
  if [ "$(id -u)" = "0" ]; then runuser -u postgres -- "$@"; else sudo -n -u postgres "$@"; fi
}
version=$(pg_lsclusters -h | awk 'NR==1 {print $1}')
cluster=$(pg_lsclusters -h | awk 'NR==1 {print $2}')
port=$(pg_lsclusters -h | awk 'NR==1 {print $3}')
pg_lsclusters -h | awk 'NR==1 {print $4}' | grep -q online || pg_ctlcluster "$version" "$cluster" start >&2
for _ in $(seq 1 30); do
  as_postgres psql -p "$port" -qtAc "select 1" >/dev/null 2>&1 && break
  sleep 0.5
done
as_postgres psql -p "$port" -qtAc "select 1 from pg_roles where rolname='wfe_test'" | grep -q 1 \
  || as_postgres psql -p "$port" -qc "create role wfe_test login createdb password 'wfe_test'" >&2
echo "export TEST_POSTGRES_DSN='postgresql+asyncpg://wfe_test:wfe_test@127.0.0.1:${port}/postgres'"
