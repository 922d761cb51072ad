#!/bin/sh
# The service's own login (role ivr_app), made when the Postgres volume is first
# initialised. The migrations (run as the owner, MIGRATION_DATABASE_URL) grant it only
# what it needs: reading and adding evidence, nothing it can escalate.
set -eu
psql -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" --dbname "$POSTGRES_DB" \
  -v password="$IVR_APP_DB_PASSWORD" <<'SQL'
CREATE ROLE ivr_app LOGIN PASSWORD :'password';
SQL
