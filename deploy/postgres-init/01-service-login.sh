#!/bin/sh
# Run once, when the Postgres volume is first initialised, as the cluster's superuser:
#   ivr_owner  owns the database and its tables; runs the migrations and retention
#              (MIGRATION_DATABASE_URL). Not a superuser: it can grant only ivr_app.
#   ivr_app    the service's own login (DATABASE_URL): the migrations grant it only
#              reading and adding evidence, nothing it can escalate.
set -eu
psql -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" --dbname postgres \
  -v owner_password="$IVR_OWNER_DB_PASSWORD" -v app_password="$IVR_APP_DB_PASSWORD" <<'SQL'
CREATE ROLE ivr_owner LOGIN PASSWORD :'owner_password' NOSUPERUSER NOCREATEDB NOCREATEROLE;
CREATE ROLE ivr_app LOGIN PASSWORD :'app_password' NOSUPERUSER NOCREATEDB NOCREATEROLE;
GRANT ivr_app TO ivr_owner WITH ADMIN OPTION;
CREATE DATABASE ivr OWNER ivr_owner;
SQL
