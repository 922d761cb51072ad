# Production-like image: the service only; Postgres and Redis come from DATABASE_URL
# and REDIS_URL (see docker-compose.yml). Without them it would start embedded
# servers inside the container, which is for laptops, not for production.
FROM python:3.12-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

WORKDIR /app
COPY pyproject.toml README.md ./
COPY flows ./flows
COPY storage ./storage
COPY ivr ./ivr
RUN pip install . && useradd --system --uid 10001 --home-dir /app ivr \
    && mkdir -p /app/var /var/lib/ivr/checkpoints && chown ivr /app/var /var/lib/ivr/checkpoints

USER ivr
EXPOSE 8080
HEALTHCHECK --interval=10s --timeout=3s --retries=3 \
  CMD python -c "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8080/healthz', timeout=2)"
CMD ["ivr", "serve", "--host", "0.0.0.0", "--port", "8080"]
