#!/bin/bash
# airflow-init: metadata DB, admin user, this project's migrations, pools and deadline Variables.
# Idempotent: safe to run on every `docker compose up`.
set -euo pipefail
mkdir -p /opt/airflow/{logs,artifacts,ledger}
airflow db migrate
airflow users create --role Admin --username "${_AIRFLOW_WWW_USER_USERNAME:-airflow}" \
  --password "${_AIRFLOW_WWW_USER_PASSWORD:-airflow}" --firstname Admin --lastname User \
  --email admin@example.com || true   # already exists on later runs
python -m include.analytics_ops.migrate
airflow pools import /opt/airflow/include/airflow_pools.json
python -m include.analytics_ops.deadlines ensure-variables
chown -R "${AIRFLOW_UID:-50000}:0" /opt/airflow/logs /opt/airflow/artifacts /opt/airflow/ledger
