# opsgate: one process serving the HTTP API, web inbox, Slack and email channels, worker and outbox.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1

WORKDIR /app
COPY pyproject.toml README.md alembic.ini ./
COPY bot ./bot
COPY channels ./channels
COPY agents ./agents
COPY storage ./storage
RUN pip install . \
    && useradd --create-home --uid 10001 opsgate \
    && mkdir -p /data && chown opsgate /data

USER opsgate
WORKDIR /data
ENV DATABASE_URL=sqlite+aiosqlite:////data/opsgate.db OPSGATE_HOST=0.0.0.0 PORT=8080
EXPOSE 8080
VOLUME ["/data"]
# Liveness only: /readyz (database writable) is for a load balancer's or orchestrator's readiness probe.
HEALTHCHECK --interval=30s --timeout=5s --start-period=20s --retries=3 \
    CMD python -c "import os, urllib.request; urllib.request.urlopen(f'http://127.0.0.1:{os.environ.get(\"PORT\", \"8080\")}/healthz', timeout=4)"
CMD ["opsgate", "serve"]
