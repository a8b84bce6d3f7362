"""Settings come from the environment and refuse unsafe production values."""

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
STRONG_KEY = "k" * 20 + "a-long-random-production-secret-9f8e7d6c5b4a3210"

PRINT_SETTINGS = (
    "import django, json; from django.conf import settings; django.setup(); "
    "db = settings.DATABASES['default']; "
    "print(json.dumps({'engine': db['ENGINE'], 'name': str(db['NAME']), "
    "'atomic': db['ATOMIC_REQUESTS'], 'eager': settings.CELERY_TASK_ALWAYS_EAGER, "
    "'broker': settings.CELERY_BROKER_URL, 'use_tz': settings.USE_TZ, "
    "'email': settings.EMAIL_BACKEND, 'hosts': settings.ALLOWED_HOSTS}))"
)


def run_python(code: str, **env: str) -> subprocess.CompletedProcess:
    clean = {k: v for k, v in os.environ.items()
             if k not in {"DATABASE_URL", "REDIS_URL", "DEBUG", "SECRET_KEY", "EMAIL_HOST",
                          "ALLOWED_HOSTS", "DJANGO_ALLOW_ASYNC_UNSAFE"}}
    return subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=False, cwd=ROOT,
        env={**clean, "DJANGO_SETTINGS_MODULE": "edc.settings", **env},
    )


def test_local_defaults_need_no_server():
    result = run_python(PRINT_SETTINGS)
    assert result.returncode == 0, result.stderr
    found = json.loads(result.stdout)
    assert found["engine"] == "django.db.backends.sqlite3"
    assert found["name"].endswith("db.sqlite3")
    assert found["atomic"] is True
    assert found["eager"] is True and found["broker"] == "memory://"
    assert found["use_tz"] is True
    assert found["email"].endswith("console.EmailBackend")


def test_production_values_come_from_the_environment():
    result = run_python(
        PRINT_SETTINGS,
        DATABASE_URL="postgres://edc:pw@db.example:5432/edc",
        REDIS_URL="redis://cache.example:6379/0",
        EMAIL_HOST="smtp.example",
        ALLOWED_HOSTS="edc.example, www.edc.example",
    )
    assert result.returncode == 0, result.stderr
    found = json.loads(result.stdout)
    assert found["engine"] == "django.db.backends.postgresql"
    assert found["name"] == "edc"
    assert found["eager"] is False and found["broker"] == "redis://cache.example:6379/0"
    assert found["email"].endswith("smtp.EmailBackend")
    assert found["hosts"] == ["edc.example", "www.edc.example"]


def test_development_secret_key_is_refused_when_debug_is_off():
    result = run_python(PRINT_SETTINGS, DEBUG="0")
    assert result.returncode != 0
    assert "SECRET_KEY must be set" in result.stderr


def test_deployment_checklist_is_clean_in_production():
    result = run_python(
        "import sys; from django.core.management import execute_from_command_line; "
        "execute_from_command_line(['manage.py', 'check', '--deploy', '--fail-level', 'WARNING'])",
        DEBUG="0", SECRET_KEY=STRONG_KEY, ALLOWED_HOSTS="edc.example",
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "no issues" in result.stdout
