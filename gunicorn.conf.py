"""gunicorn's settings for the EDC: the Docker image, docker-compose.yml and the load test
(``benchmarks/load.py``) all start gunicorn with this file, so the load test measures the
configuration production runs. Each setting can be changed through the environment.

Workers: gunicorn's documentation recommends ``(2 × cores) + 1`` sync workers as the starting
point (one busy on the CPU while another waits on PostgreSQL); the cores counted are those this
process may run on (a container's CPU set, not the host's). Sync workers expect a buffering
reverse proxy in front (TLS ends there too), which is how the product is deployed. At most 12
by default (the documentation's "4–12 workers handle hundreds or thousands of requests per
second"): each worker keeps a PostgreSQL connection open, and PostgreSQL allows 100.
"""

import os


def _cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


wsgi_app = "edc.wsgi:application"
bind = os.environ.get("GUNICORN_BIND", "0.0.0.0:8000")
workers = int(os.environ.get("WEB_CONCURRENCY", min(2 * _cores() + 1, 12)))
worker_class = "sync"
timeout = int(os.environ.get("GUNICORN_TIMEOUT", "60"))
graceful_timeout = 10
# A worker is replaced after this many requests (jittered so they do not all restart at once):
# memory a long-lived process gathers is given back.
max_requests = int(os.environ.get("GUNICORN_MAX_REQUESTS", "2000"))
max_requests_jitter = max_requests // 10
accesslog = os.environ.get("GUNICORN_ACCESS_LOG") or None

# The application is loaded once, in the master, before the workers are forked, and its URL
# configuration (every view module it imports, ~0.3 s of CPU) is loaded there too: a worker,
# the first ones and each one ``max_requests`` replaces, starts ready instead of making its
# first user wait while it imports, and the workers share those pages of memory.
preload_app = os.environ.get("GUNICORN_PRELOAD", "1") != "0"


def when_ready(server) -> None:
    """In the master, once the preloaded application is there and before any worker exists."""
    if preload_app:
        from django.urls import reverse

        reverse("login")  # imports and indexes the whole URL configuration


def pre_fork(server, worker) -> None:
    """No database connection crosses a fork: each worker opens its own."""
    if preload_app:
        from django.db import connections

        connections.close_all()
