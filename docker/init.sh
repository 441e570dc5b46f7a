#!/bin/bash
# airflow-init: checks the secrets, then the metadata DB, the admin user, this project's
# migrations and its pools. Idempotent: safe to run on every `docker compose up`.
# The same steps are the post-install job for Helm / your own Airflow (README "Deploying").
set -euo pipefail
root=/opt/airflow

# Passwords are spliced into connection URLs by docker-compose.yaml: refuse what a URL would
# mangle (or leak in an error) instead of failing later with a half-printed URL.
for name in AIRFLOW_DB_PASSWORD ANALYTICS_DB_PASSWORD; do
  value="${!name:-}"
  if [[ -z "$value" || ! "$value" =~ ^[A-Za-z0-9._~-]+$ ]]; then
    echo "airflow-init: $name must be set and URL-safe (letters, digits, . _ ~ -);" \
         "generate one with: openssl rand -hex 24" >&2
    exit 1
  fi
done

mkdir -p "$root/logs" "$root/artifacts" "$root/ledger"
airflow db migrate
if ! airflow users list -o plain 2>/dev/null | grep -qw -- "${_AIRFLOW_WWW_USER_USERNAME:-admin}"; then
  airflow users create --role Admin --username "${_AIRFLOW_WWW_USER_USERNAME:-admin}" \
    --password "${_AIRFLOW_WWW_USER_PASSWORD:?set _AIRFLOW_WWW_USER_PASSWORD}" \
    --firstname Admin --lastname User --email admin@example.com
fi
python -m include.analytics_ops.migrate
python -m include.analytics_ops.pools ensure
if [ "$(id -u)" = 0 ]; then
  chown -R "${AIRFLOW_UID:-50000}:0" "$root/logs" "$root/artifacts" "$root/ledger"
fi
