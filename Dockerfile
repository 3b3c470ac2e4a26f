# Airflow 3.3.2 with this project's pinned requirements and the vehicle_etl package (editable:
# docker-compose mounts the repository at /opt/vehicle-etl, so code changes need no rebuild).
FROM apache/airflow:3.3.2-python3.11

USER root
# psql restores NHTSA's PostgreSQL dump; freetds-bin gives tsql for debugging SQL Server logins.
RUN apt-get update \
    && apt-get install -y --no-install-recommends postgresql-client freetds-bin \
    && rm -rf /var/lib/apt/lists/*
USER airflow

COPY --chown=airflow:0 requirements.txt pyproject.toml /opt/vehicle-etl/
COPY --chown=airflow:0 vehicle_etl /opt/vehicle-etl/vehicle_etl
# Pin apache-airflow alongside the lock so pip can never up- or downgrade the image's Airflow.
RUN pip install --no-cache-dir "apache-airflow==3.3.2" -r /opt/vehicle-etl/requirements.txt \
    && pip install --no-cache-dir --no-deps -e /opt/vehicle-etl
