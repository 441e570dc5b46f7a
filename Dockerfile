# Production image: the official Airflow image plus this project's pinned dependencies.
# Code (dags/, plugins/, include/) is mounted by docker-compose.yaml in development and copied in
# for image-only deployments (Kubernetes with the official Helm chart).
FROM apache/airflow:3.3.2

COPY --chown=airflow:root requirements.txt /tmp/requirements.txt
RUN pip install --no-cache-dir -r /tmp/requirements.txt "apache-airflow==3.3.2"

COPY --chown=airflow:root airflow_local_settings.py /opt/airflow/airflow_local_settings.py
COPY --chown=airflow:root include /opt/airflow/include
COPY --chown=airflow:root dags /opt/airflow/dags
COPY --chown=airflow:root plugins /opt/airflow/plugins

# /opt/airflow plays the role of the repo root: `include.analytics_ops` imports the same way as
# in tests and the demo.
ENV PYTHONPATH=/opt/airflow
