#!/bin/bash
# Creates the registry database of workflow-engine next to Temporal's databases.
# Runs once, when the postgresql volume is initialised (docker-entrypoint-initdb.d).
set -euo pipefail

psql -v ON_ERROR_STOP=1 \
    --username "$POSTGRES_USER" --dbname "$POSTGRES_DB" \
    -v app_user="${APP_DB_USER:-workflow_engine}" \
    -v app_password="${APP_DB_PASSWORD:-workflow_engine}" \
    -v app_db="${APP_DB_NAME:-workflow_engine}" <<'EOSQL'
CREATE ROLE :"app_user" LOGIN PASSWORD :'app_password';
CREATE DATABASE :"app_db" OWNER :"app_user";
EOSQL
