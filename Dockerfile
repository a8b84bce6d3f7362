# One image for web, worker and beat (see docker-compose.yml).
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1
WORKDIR /app

# pg_dump and pg_restore for manage.py backup/restore, of the server's major version (16, see
# docker-compose.yml): PostgreSQL's own Debian repository, as https://www.postgresql.org/download/linux/debian/ describes.
RUN apt-get update && apt-get install -y --no-install-recommends postgresql-common \
    && /usr/share/postgresql-common/pgdg/apt.postgresql.org.sh -y \
    && apt-get install -y --no-install-recommends postgresql-client-16 \
    && rm -rf /var/lib/apt/lists/*

COPY pyproject.toml ./
COPY edc ./edc
COPY visits ./visits
COPY forms ./forms
COPY exports ./exports
COPY wiring ./wiring
COPY api ./api
RUN pip install .

COPY . .
# collectstatic needs settings, not secrets: a throw-away key for this one build step.
RUN DEBUG=0 SECRET_KEY=collectstatic-only python manage.py collectstatic --noinput

RUN useradd --system --uid 1000 edc && chown -R edc /app \
    && mkdir -p /var/lib/edc/audit-tips /var/lib/edc/backups && chown -R edc /var/lib/edc
USER edc
EXPOSE 8000
# Workers, timeouts and the rest: gunicorn.conf.py (the load test runs the same file).
CMD ["gunicorn", "--config", "gunicorn.conf.py"]
