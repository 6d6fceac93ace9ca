# One image for every process of workflow-engine: the CMD picks api (default), worker or migrate.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    WORKFLOWS_DIR=/app/workflows

WORKDIR /app

# Fixed ids so mounted volumes get predictable ownership.
RUN groupadd --system --gid 10001 app \
    && useradd --system --uid 10001 --gid app --home-dir /app --no-create-home --shell /usr/sbin/nologin app

# Dependencies first: this layer is reused until requirements.txt changes.
COPY requirements.txt ./
RUN pip install --no-compile -r requirements.txt

COPY alembic.ini ./
COPY migrations/ ./migrations/
COPY workflow_engine/ ./workflow_engine/
COPY workflows/ ./workflows/

# The only directory the app may write to (e.g. a SQLite file when run without PostgreSQL).
RUN mkdir -p /app/data && chown app:app /app/data

USER app

EXPOSE 8000

CMD ["python", "-m", "workflow_engine", "api"]
