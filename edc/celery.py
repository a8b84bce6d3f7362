"""The Celery application. Configuration comes from Django settings (``CELERY_*``).

Without ``REDIS_URL`` tasks run in-process (``task_always_eager``), so the demo needs no broker.
"""

import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "edc.settings")

app = Celery("edc")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()
