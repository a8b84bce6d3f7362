"""docker-compose.yml runs the whole product; the compose CLI itself must accept it."""

import os
import shutil
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def compose_command() -> list[str]:
    if shutil.which("docker") and subprocess.run(
        ["docker", "compose", "version"], capture_output=True, check=False
    ).returncode == 0:
        return ["docker", "compose"]
    if shutil.which("docker-compose"):
        return ["docker-compose"]
    raise AssertionError(
        "Neither 'docker compose' nor 'docker-compose' is installed: make test installs it "
        "with apt-get; install it by hand elsewhere."
    )


def run_compose(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run(
        [*compose_command(), "-f", str(ROOT / "docker-compose.yml"), *args],
        capture_output=True, text=True, check=False, cwd=ROOT,
        env={"PATH": os.environ["PATH"], **env},
    )


def test_compose_file_is_valid_with_every_service():
    result = run_compose("config", "--services", env={"SECRET_KEY": "s3cret-for-the-test"})
    assert result.returncode == 0, result.stderr
    assert set(result.stdout.split()) == {"postgres", "redis", "web", "worker", "beat",
                                          "backup"}


def test_compose_schedules_backups_and_keeps_the_tips_outside_the_database():
    import yaml

    result = run_compose("config", env={"SECRET_KEY": "s3cret-for-the-test"})
    assert result.returncode == 0, result.stderr
    services = yaml.safe_load(result.stdout)["services"]
    command = services["backup"]["command"]
    assert "manage.py backup" in (command if isinstance(command, str) else " ".join(command))
    for name in ("web", "worker", "beat", "backup"):
        environment = services[name]["environment"]
        assert environment["AUDIT_TIPS_FILE"].startswith("/var/lib/edc/audit-tips/")
        assert environment["BACKUP_DIR"] == "/var/lib/edc/backups"
        mounted = {volume["target"] if isinstance(volume, dict) else volume.split(":")[1]
                   for volume in services[name]["volumes"]}  # compose v2, v1
        assert {"/var/lib/edc/audit-tips", "/var/lib/edc/backups"} <= mounted


def test_compose_refuses_to_start_without_a_secret_key():
    result = run_compose("config", "-q", env={})
    assert result.returncode != 0
    assert "SECRET_KEY" in result.stderr
