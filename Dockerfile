# Production image: Python 3.11 + exactly the runtime lock (requirements.txt: Airflow 3.3.2, the
# celery/fab/postgres/http/slack/smtp providers, celery, the Redis client, the DB drivers), nothing
# else. The official apache/airflow image ships ~60 more providers pinned by Airflow's own
# constraints; installing our lock over them left an inconsistent set (`pip check` failed), so the
# image is built from the lock alone and `pip check` here is the lock's own check.
# Code (dags/, plugins/, include/) is mounted by docker-compose.yaml in development and copied in
# for image-only deployments (Kubernetes with the official Helm chart).
FROM python:3.11-slim-bookworm AS runtime

# curl: the compose health checks; dumb-init: PID 1 forwarding signals (DUMB_INIT_SETSID=0 for
# the Celery worker's warm shutdown), as in the official image.
RUN apt-get update \
    && apt-get install -y --no-install-recommends curl dumb-init \
    && rm -rf /var/lib/apt/lists/*

ENV AIRFLOW_HOME=/opt/airflow \
    AIRFLOW_UID=50000 \
    PYTHONPATH=/opt/airflow \
    PYTHONDONTWRITEBYTECODE=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

# The official image's user: uid 50000, group 0 (compose runs services as "${AIRFLOW_UID}:0").
RUN useradd --uid 50000 --gid 0 --home-dir /home/airflow --create-home airflow \
    && mkdir -p /opt/airflow/logs /opt/airflow/artifacts /opt/airflow/ledger \
    && chown -R airflow:0 /opt/airflow && chmod -R g+rwX /opt/airflow

COPY requirements.txt /tmp/requirements.txt
RUN pip install -r /tmp/requirements.txt && pip check

COPY --chown=airflow:0 airflow_local_settings.py /opt/airflow/airflow_local_settings.py
COPY --chown=airflow:0 include /opt/airflow/include
COPY --chown=airflow:0 dags /opt/airflow/dags
COPY --chown=airflow:0 plugins /opt/airflow/plugins

WORKDIR /opt/airflow
USER airflow
EXPOSE 8080
# `docker compose` passes the Airflow sub-command (api-server, scheduler, celery worker, ...).
ENTRYPOINT ["/usr/bin/dumb-init", "--", "airflow"]
CMD ["version"]

# The stand-in upstreams (`docker compose --profile sandbox`): the runtime plus the dev tools the
# sandbox runs on. Never deployed as an Airflow service.
FROM runtime AS sandbox
USER root
COPY requirements-dev.txt /tmp/requirements-dev.txt
RUN pip install -r /tmp/requirements.txt -r /tmp/requirements-dev.txt && pip check
USER airflow

# The default target: the production image.
FROM runtime AS production
