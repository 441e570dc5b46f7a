#!/bin/bash
# Runs once, on the first start of the postgres volume: a separate owner and database for the
# analytics state (ops + analytics schemas), apart from Airflow's metadata database.
# The password is passed as a psql variable and quoted by psql (:'...'), never spliced into SQL.
set -euo pipefail
: "${ANALYTICS_DB_PASSWORD:?set ANALYTICS_DB_PASSWORD in .env}"
psql -v ON_ERROR_STOP=1 -v analytics_password="$ANALYTICS_DB_PASSWORD" \
  --username "$POSTGRES_USER" --dbname "$POSTGRES_DB" <<-'SQL'
  CREATE ROLE analytics LOGIN PASSWORD :'analytics_password';
  CREATE DATABASE analytics OWNER analytics;
SQL
