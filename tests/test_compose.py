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
    assert set(result.stdout.split()) == {"postgres", "redis", "migrate", "web", "worker",
                                          "beat", "backup"}


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


def test_compose_migrates_as_the_owner_and_runs_the_application_as_its_own_role():
    """Issue 19 item 4: only the migrate service holds the owner's credentials."""
    import yaml

    result = run_compose("config", env={"SECRET_KEY": "s3cret-for-the-test"})
    assert result.returncode == 0, result.stderr
    services = yaml.safe_load(result.stdout)["services"]

    def command(name: str) -> str:
        found = services[name]["command"]
        return found if isinstance(found, str) else " ".join(found)

    assert services["migrate"]["environment"]["DATABASE_URL"].startswith(
        "postgres://edc_owner:")
    assert "manage.py db_roles --owner edc_owner --app edc_app" in command("migrate")
    assert "manage.py migrate" in command("migrate")
    for name in ("web", "worker", "beat", "backup"):
        environment = services[name]["environment"]
        assert environment["DATABASE_URL"].startswith("postgres://edc_app:")
        assert "DATABASE_ADMIN_URL" not in environment
        assert "DATABASE_OWNER_PASSWORD" not in environment
        assert "migrate" not in command(name)
        assert services[name]["depends_on"]["migrate"]["condition"] == (
            "service_completed_successfully")
