#!/bin/bash
# Runs once, on the first start of the postgres volume: a separate owner and database for the
# analytics state (ops + analytics schemas), apart from Airflow's metadata database.
set -euo pipefail
psql -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" --dbname "$POSTGRES_DB" <<-SQL
  CREATE ROLE analytics LOGIN PASSWORD '${ANALYTICS_DB_PASSWORD:-analytics}';
  CREATE DATABASE analytics OWNER analytics;
SQL
