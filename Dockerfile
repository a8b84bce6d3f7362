# One image for web, worker and beat (see docker-compose.yml).
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1
WORKDIR /app

COPY pyproject.toml ./
COPY edc ./edc
COPY visits ./visits
COPY forms ./forms
COPY exports ./exports
COPY wiring ./wiring
RUN pip install .

COPY . .
# collectstatic needs settings, not secrets: a throw-away key for this one build step.
RUN DEBUG=0 SECRET_KEY=collectstatic-only python manage.py collectstatic --noinput

RUN useradd --system --uid 1000 edc && chown -R edc /app
USER edc
EXPOSE 8000
# Workers, timeouts and the rest: gunicorn.conf.py (the load test runs the same file).
CMD ["gunicorn", "--config", "gunicorn.conf.py"]
