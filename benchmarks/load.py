"""Load test: site nurses working at once on gunicorn and PostgreSQL, and no save lost.

    .venv/bin/python benchmarks/load.py --database-url postgres://postgres@127.0.0.1:5432/edc_load \
        --seed-subjects 60 [--seed 2] [--users 20] [--seconds 60] [--port 8765]

With ``--seed-subjects`` the database is dropped and created again, migrated and filled by
``manage.py seed_trial``; without it the database is used as it is (a seeded trial).

:func:`run_load_test` starts gunicorn with the production configuration (``gunicorn.conf.py``:
``2 × cores + 1`` sync workers, 5 on this 2-core machine, loaded once before the fork; through
``benchmarks/gunicorn_timed.py``, which adds only two hooks that log each request's time and
CPU inside its worker) and the production
settings (``DEBUG=0``, a random ``SECRET_KEY``, static files collected for the manifest
storage), over plain HTTP on the loopback: TLS is the reverse proxy's job in production, so the
HTTPS redirect and secure-only cookies are turned off. There is no ``REDIS_URL``, as in a
single-host deployment: tasks run in-process and the cache is per worker. A data-entry save
enqueues no task (only a serious adverse event does), so a broker would change nothing here.

Locust runs in a child process (its gevent monkey-patching stays out of this one), headless
and bounded in time, with the simulated nurses of ``benchmarks/locustfile.py``: each works on
subjects of its own site that no other simulated user touches. Every save the server
acknowledges is written down by the users; afterwards the database is read to check that each
one is there: the form's final value is the last acknowledged one, each acknowledged save has
its history row (same version and value), and nothing else on the form changed.

The machine is shared by the server, PostgreSQL and the load generator (and, on a shared
machine, by whatever else runs): beside each request's time as the user saw it the result puts
its time and CPU inside the worker, and it reports the CPU the server, the load generator and
the whole machine used during the run, with the load average, so a slow figure says whether the
server was slow, or the request waited for a worker or for a CPU that others were using.
"""

import argparse
import itertools
import json
import math
import os
import resource
import secrets
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections import defaultdict
from decimal import Decimal
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import psycopg
from psycopg import sql

ROOT = Path(__file__).resolve().parent.parent
PYTHON = sys.executable
LOCUSTFILE = Path(__file__).resolve().parent / "locustfile.py"
# forms.synthetic.PASSWORD, shared by every account of the synthetic trial (seed_trial).
SYNTHETIC_PASSWORD = "Stroke-Synthetic-2026!"  # noqa: S105 - public demo accounts
GUNICORN_CONFIG = ROOT / "gunicorn.conf.py"
# The same settings plus hooks that log each request's time inside the server.
GUNICORN_TIMED_CONFIG = Path(__file__).resolve().parent / "gunicorn_timed.py"
# Seconds each simulated nurse spends between two actions (reading a page, typing a form),
# uniformly drawn. Twenty users in a closed loop can send at most 20 × 1.6 requests per action
# / mean think time: with 1–5 s (3 s on average) that is 10.7 requests/s however fast the
# server is, so the earlier figure (9.3 requests/s) measured the think time, not the server.
# 0.5–2 s is a quick nurse moving through pages she knows, and lets the run show how much work
# the server takes at 20 concurrent sessions; EDC_LOAD_WAIT / --wait choose another.
DEFAULT_WAIT = "0.5,2"
# Users start two a second: a log-in costs an Argon2 hash (~0.5 s of CPU), and twenty at
# once would measure only that.
SPAWN_RATE = 2
# The log-in at each user's start, left out of the headline percentiles.
LOGIN = ("GET login", "POST login")
# Items of a vital-signs form the load test does not change: they must be as they were.
VITAL_ITEMS_KEPT = ("measured_at", "systolic_bp", "diastolic_bp", "temperature",
                    "respiratory_rate", "spo2", "weight", "missing_items", "not_done_reason")


# --- The plan: which simulated user works on which subjects ------------------------------------


def load_plan(database_url: str, users: int) -> dict:
    """Give each simulated user the nurse account of one site and subjects of that site with
    completed vital signs, no two users sharing a subject; sites get users in proportion to
    their subjects. Subjects under a data lock are left out: the trial's, their site's, or
    one of their own (a lock of a subject, visit or form names its site too, and leaves the
    site's other subjects open)."""
    with psycopg.connect(database_url) as connection:
        rows = connection.execute("""
            SELECT site.code, sub.id, vs.id, vs.visit_id, v.actual_date
            FROM forms_vitalsigns vs
            JOIN visits_subject sub ON sub.id = vs.subject_id
            JOIN visits_visit v ON v.id = vs.visit_id
            JOIN edc_site site ON site.id = sub.site_id
            WHERE vs.status = 'complete' AND v.actual_date IS NOT NULL
              AND NOT EXISTS (
                SELECT 1 FROM forms_lock lock WHERE lock.unlocked_at IS NULL
                AND (lock.scope = 'trial' OR (lock.scope = 'site' AND lock.site_id = sub.site_id)
                     OR lock.subject_id = sub.id))
            ORDER BY site.code, sub.id, v.actual_date""").fetchall()
        nurses = dict(connection.execute("""
            SELECT site.code, min(u.username) FROM edc_user u
            JOIN edc_user_sites us ON us.user_id = u.id
            JOIN edc_site site ON site.id = us.site_id
            WHERE u.role = 'site_staff' AND u.is_active
            GROUP BY site.code""").fetchall())
    subjects: dict[str, dict[int, dict]] = defaultdict(dict)
    for site, subject, form, visit, actual_date in rows:
        if site not in nurses:
            continue
        entry = subjects[site].setdefault(
            subject, {"subject": subject, "vital_signs": [], "last_visit_date": ""})
        entry["vital_signs"].append({"pk": form, "visit": visit})
        entry["last_visit_date"] = max(entry["last_visit_date"], actual_date.isoformat())
    total = sum(len(s) for s in subjects.values())
    if total < users:
        raise ValueError(f"{users} simulated users need at least as many subjects with "
                         f"completed vital signs ({total} found): seed a larger trial.")
    # Fewer users than sites: the largest sites.
    subjects = dict(sorted(subjects.items(), key=lambda s: -len(s[1]))[:users])
    share = dict.fromkeys(subjects, 1)
    for _extra in range(users - len(subjects)):
        site = max((s for s in subjects if share[s] < len(subjects[s])),
                   key=lambda s: len(subjects[s]) / share[s])
        share[site] += 1
    by_site = []
    for site, site_subjects in sorted(subjects.items()):
        ordered = list(site_subjects.values())
        by_site.append([{"username": nurses[site], "site": site,
                         "subjects": ordered[number::share[site]]}
                        for number in range(share[site])])
    # Spawned in this order: the sites in turn.
    plan_users = [u for turn in itertools.zip_longest(*by_site) for u in turn if u]
    return {"users": plan_users}


def vital_signs_rows(database_url: str, pks: list[int]) -> dict[int, dict]:
    columns = ("id", "version", "heart_rate", "status", *VITAL_ITEMS_KEPT)
    with psycopg.connect(database_url) as connection:
        cursor = connection.execute(
            sql.SQL("SELECT {} FROM forms_vitalsigns WHERE id = ANY(%s)").format(
                sql.SQL(", ").join(map(sql.Identifier, columns))), [pks])
        return {row[0]: dict(zip(columns, row, strict=True)) for row in cursor}


# --- The server ----------------------------------------------------------------------------------


def server_environment(database_url: str, work: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items()
           if k not in ("REDIS_URL", "DJANGO_SETTINGS_MODULE")}
    env |= {
        "DEBUG": "0",
        "SECRET_KEY": secrets.token_urlsafe(50),
        "ALLOWED_HOSTS": "127.0.0.1,localhost",
        "DATABASE_URL": database_url,
        "STATIC_ROOT": str(work / "static"),
        "EXPORT_ROOT": str(work / "exports"),
        # Plain HTTP on the loopback; production terminates TLS at the proxy.
        "SECURE_SSL_REDIRECT": "0",
        "SECURE_COOKIES": "0",
        "LOG_LEVEL": "WARNING",
        # The simulated nurses log in with the password alone: production asks every role for
        # a TOTP code too (edc.two_factor), which a script has no phone for.
        "TWO_FACTOR_ROLES": "",
    }
    return env


def port_is_free(port: int) -> bool:
    with socket.socket() as probe:
        return probe.connect_ex(("127.0.0.1", port)) != 0


def start_server(env: dict[str, str], port: int, log: Path,
                 config: Path = GUNICORN_TIMED_CONFIG) -> subprocess.Popen:
    """gunicorn on ``port``, answering; static files are collected first unless
    ``STATIC_ROOT`` already holds a collection (its manifest)."""
    if not (Path(env["STATIC_ROOT"]) / "staticfiles.json").exists():
        subprocess.run([PYTHON, "manage.py", "collectstatic", "--noinput", "-v", "0"],
                       cwd=ROOT, env=env, check=True)
    if not port_is_free(port):
        raise RuntimeError(f"Port {port} is already in use: another server would be measured.")
    server = subprocess.Popen(
        [PYTHON, "-m", "gunicorn", "--config", str(config), "--chdir", str(ROOT),
         "--bind", f"127.0.0.1:{port}"],
        cwd=ROOT, env=env, stdout=log.open("wb"), stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise RuntimeError(f"gunicorn stopped at start:\n{tail(log)}")
        try:
            with urllib.request.urlopen(
                    f"http://127.0.0.1:{port}/accounts/login/", timeout=5) as response:
                if response.status == 200:
                    return server
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            pass
        time.sleep(0.3)
    stop_server(server)
    raise RuntimeError(f"gunicorn did not answer within 60 s:\n{tail(log)}")


def _cpu_seconds(pid: int) -> tuple[int, float]:
    """(parent pid, user + system CPU seconds) of a process, from /proc (Linux)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return int(fields[1]), (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def server_cpu_seconds(server: subprocess.Popen, database_url: str) -> dict[str, float] | None:
    """CPU seconds the gunicorn workers and their PostgreSQL back-ends have used so far: what
    the server spent, whatever else the machine was doing (None where /proc is missing)."""
    try:
        gunicorn = 0.0
        for entry in Path("/proc").iterdir():
            if entry.name.isdigit():
                try:
                    parent, seconds = _cpu_seconds(int(entry.name))
                except (OSError, IndexError, ValueError):
                    continue
                if parent == server.pid or int(entry.name) == server.pid:
                    gunicorn += seconds
        name = urlsplit(database_url).path.lstrip("/")
        with psycopg.connect(database_url) as connection:
            pids = [row[0] for row in connection.execute(
                "SELECT pid FROM pg_stat_activity WHERE datname = %s "
                "AND pid <> pg_backend_pid()", [name])]
        postgres = 0.0
        for pid in pids:
            try:
                postgres += _cpu_seconds(pid)[1]
            except (OSError, IndexError, ValueError):
                continue
        return {"gunicorn": gunicorn, "postgres": postgres}
    except OSError:
        return None


def machine_cpu_seconds() -> float | None:
    """CPU seconds every process of the machine has used since boot (``/proc/stat``: all but
    idle and I/O wait), or None where there is no /proc."""
    try:
        fields = Path("/proc/stat").read_text().splitlines()[0].split()[1:]
    except OSError:
        return None
    ticks = [int(f) for f in fields]
    busy = sum(ticks[:8]) - ticks[3] - ticks[4]  # user nice system idle iowait irq softirq steal
    return busy / os.sysconf("SC_CLK_TCK")


def stop_server(server: subprocess.Popen) -> None:
    if server.poll() is not None:
        return
    server.send_signal(signal.SIGTERM)
    try:
        server.wait(timeout=20)
    except subprocess.TimeoutExpired:
        os.killpg(server.pid, signal.SIGKILL)
        server.wait()


def tail(path: Path, lines: int = 40) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except FileNotFoundError:
        return ""


# --- Locust --------------------------------------------------------------------------------------


def gunicorn_workers() -> int:
    """The number of workers ``gunicorn.conf.py`` gives here."""
    import runpy

    return int(runpy.run_path(str(GUNICORN_CONFIG))["workers"])


def run_locust(*, port: int, users: int, seconds: int, work: Path, plan: Path,
               saves: Path, requests: Path, wait: str = DEFAULT_WAIT) -> float:
    """Run the simulated users; return the CPU seconds the load generator itself used (it
    shares the machine with the server it measures)."""
    env = dict(os.environ) | {
        "EDC_LOAD_PLAN": str(plan), "EDC_LOAD_SAVES": str(saves),
        "EDC_LOAD_REQUESTS": str(requests), "EDC_LOAD_WAIT": wait,
        "EDC_LOAD_PASSWORD": os.environ.get("EDC_LOAD_PASSWORD", SYNTHETIC_PASSWORD),
    }
    log = work / "locust.log"
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    with log.open("wb") as output:
        done = subprocess.run(
            [PYTHON, "-m", "locust", "-f", str(LOCUSTFILE), "--headless",
             "--users", str(users), "--spawn-rate", str(SPAWN_RATE),
             "--run-time", f"{seconds}s", "--stop-timeout", "30",
             "--host", f"http://127.0.0.1:{port}", "--only-summary",
             "--exit-code-on-error", "0", "--loglevel", "WARNING"],
            cwd=ROOT, env=env, stdout=output, stderr=subprocess.STDOUT,
            timeout=seconds + 180, check=False,
        )
    if done.returncode != 0:
        raise RuntimeError(f"locust failed (exit {done.returncode}):\n{tail(log)}")
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def percentile(values: list[float], share: float) -> float:
    """Nearest-rank percentile."""
    ordered = sorted(values)
    return ordered[max(0, math.ceil(share * len(ordered)) - 1)] if ordered else 0.0


def _json_lines(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def request_figures(path: Path, server_path: Path | None = None) -> tuple[list[dict],
                                                                          list[dict]]:
    """(every request, one row of figures per request name) from the users' request log, with
    the server's own timing of the same requests beside them where it was logged: the time
    inside the worker (``server_p50_ms``, ``server_p95_ms``) and the worker's CPU time
    (``server_cpu_ms``, median). What the user saw beyond the time inside the worker is the
    wait for a free worker and the load generator's own delays."""
    logged = _json_lines(path)
    by_name = defaultdict(list)
    for entry in logged:
        by_name[entry["name"]].append(entry)
    served = defaultdict(list)
    for entry in _json_lines(server_path) if server_path else []:
        served[entry["name"]].append(entry)
    rows = []
    for name, entries in sorted(by_name.items()):
        times = [e["ms"] for e in entries if e["ms"] is not None]
        row = {"name": name, "requests": len(entries),
               "failures": sum(1 for e in entries if e["error"]),
               "p50_ms": percentile(times, 0.50), "p95_ms": percentile(times, 0.95)}
        inside = served.get(name)
        if inside:
            row |= {"server_p50_ms": percentile([e["wall_ms"] for e in inside], 0.50),
                    "server_p95_ms": percentile([e["wall_ms"] for e in inside], 0.95),
                    "server_cpu_ms": percentile([e["cpu_ms"] for e in inside], 0.50)}
        rows.append(row)
    return logged, rows


# --- Checking the saves ------------------------------------------------------------------------


def read_saves(path: Path) -> tuple[list[dict], list[dict]]:
    attempts, acks = [], []
    if path.exists():
        for line in path.read_text().splitlines():
            entry = json.loads(line)
            (acks if entry["event"] == "ack" else attempts).append(entry)
    return attempts, acks


def check_saves(database_url: str, attempts: list[dict], acks: list[dict],
                before: dict[int, dict]) -> tuple[int, int, list[str]]:
    """(lost saves, saves committed though not acknowledged, problems). A save is lost when
    the database does not hold what the server acknowledged: no history row with its version
    and value, or, for the last save of a form, a final value other than the one saved."""
    problems: list[str] = []
    lost: set[str] = set()
    unacknowledged = 0
    acknowledged = {a["id"] for a in acks}
    vital = [a for a in acks if a["crf"] == "vital_signs"]
    pks = sorted({a["pk"] for a in vital})
    after = vital_signs_rows(database_url, pks) if pks else {}
    with psycopg.connect(database_url) as connection:
        history = defaultdict(list)
        for pk, version, heart_rate, reason in connection.execute(
                "SELECT id, version, heart_rate, history_change_reason "
                "FROM forms_historicalvitalsigns WHERE id = ANY(%s)", [pks]):
            history[pk, version].append((heart_rate, reason))
        by_form = defaultdict(list)
        for save in vital:
            by_form[save["pk"]].append(save)
            rows = history.get((save["pk"], save["version"]), [])
            if not any(hr == save["values"]["heart_rate"] for hr, _reason in rows):
                lost.add(save["id"])
                problems.append(f"vital signs {save['pk']} v{save['version']}: acknowledged "
                                f"save has no history row (heart rate "
                                f"{save['values']['heart_rate']})")
            elif not any(reason == save["reason"] for _hr, reason in rows):
                problems.append(f"vital signs {save['pk']} v{save['version']}: the history "
                                f"row lacks the reason given")
        for pk, saves in by_form.items():
            last = max(saves, key=lambda s: s["version"])
            row = after.get(pk)
            if row is None:
                lost.add(last["id"])
                problems.append(f"vital signs {pk}: the form is gone")
                continue
            later = [a for a in attempts if a["crf"] == "vital_signs" and a["pk"] == pk
                     and a["version"] > last["version"] and a["id"] not in acknowledged]
            if row["version"] > last["version"] and later:
                unacknowledged += row["version"] - last["version"]
            elif (row["version"], row["heart_rate"]) != (last["version"],
                                                         last["values"]["heart_rate"]):
                lost.add(last["id"])
                problems.append(f"vital signs {pk}: holds v{row['version']} heart rate "
                                f"{row['heart_rate']}, last acknowledged v{last['version']} "
                                f"heart rate {last['values']['heart_rate']}")
            changed = [name for name in VITAL_ITEMS_KEPT if row[name] != before[pk][name]]
            if row["status"] != "complete":
                changed.append("status")
            if changed:
                problems.append(f"vital signs {pk}: items nobody changed differ after the "
                                f"saves: {', '.join(changed)}")
        for save in (a for a in acks if a["crf"] == "concomitant_medication"):
            problem = _check_medication(connection, save)
            if problem:
                lost.add(save["id"])
                problems.append(problem)
    return len(lost), unacknowledged, problems


def _check_medication(connection: psycopg.Connection, save: dict) -> str:
    values = save["values"]
    found = connection.execute(
        "SELECT id, status, indication, dose, doses_per_day, route, start_date, end_date, "
        "ongoing FROM forms_concomitantmedication WHERE subject_id = %s AND medication = %s",
        [save["subject"], values["medication"]]).fetchall()
    if len(found) != 1:
        return f"medication {values['medication']!r}: {len(found)} rows, 1 acknowledged"
    pk, status, indication, dose, per_day, route, start, end, ongoing = found[0]
    saved = {"indication": indication, "dose": dose, "doses_per_day": per_day, "route": route,
             "start_date": start.isoformat(), "end_date": end.isoformat() if end else "",
             "ongoing": ongoing}
    wanted = {name: Decimal(values[name]) if name in ("dose", "doses_per_day") else values[name]
              for name in saved}
    differing = [f"{name} {saved[name]!r} (entered {wanted[name]!r})"
                 for name in saved if saved[name] != wanted[name]]
    if status != "complete":
        differing.append(f"status {status}")
    created = connection.execute(
        "SELECT count(*) FROM forms_historicalconcomitantmedication "
        "WHERE id = %s AND history_type = '+'", [pk]).fetchone()[0]
    if not created:
        differing.append("no history row")
    return (f"medication {values['medication']!r} (id {pk}): {'; '.join(differing)}"
            if differing else "")


# --- The whole test ------------------------------------------------------------------------------


def steady_throughput(logged: list[dict]) -> tuple[float, float]:
    """(requests per second, seconds) once every user has logged in: work requests completed
    after the last log-in, over the time from that log-in to the last request."""
    logins = [e["t"] for e in logged if e["name"] in LOGIN and e.get("t")]
    done = [e["t"] for e in logged if e["name"] not in LOGIN and e.get("t") and e["ms"]]
    if not logins or not done:
        return 0.0, 0.0
    start = max(logins)
    window = max(done) - start
    counted = sum(1 for t in done if t > start)
    return (counted / window if window > 0 else 0.0), window


def run_load_test(database_url: str, *, users: int = 20, seconds: int = 60,
                  port: int = 8765, wait: str = DEFAULT_WAIT,
                  static_root: Path | None = None) -> dict:
    """Run ``users`` simulated nurses for ``seconds`` against gunicorn on ``port`` serving the
    seeded trial in ``database_url``; return the figures and the check of the saves.

    ``requests``, ``p50_ms`` and ``p95_ms`` are over the work (page views and saves), not over
    each user's log-in at the start (an Argon2 hash, reported on its own in ``by_request``);
    ``errors`` counts every request that failed (5xx, an unexpected 4xx or redirect, a refused
    save, a connection error) and every exception in a simulated user."""
    plan = load_plan(database_url, users)
    pks = [f["pk"] for u in plan["users"] for s in u["subjects"] for f in s["vital_signs"]]
    before = vital_signs_rows(database_url, pks)
    with tempfile.TemporaryDirectory(prefix="edc-load-") as directory:
        work = Path(directory)
        plan_path = work / "plan.json"
        plan_path.write_text(json.dumps(plan))
        server_log = work / "gunicorn.log"
        started = time.monotonic()
        environment = server_environment(database_url, work) | {
            "EDC_LOAD_SERVER_LOG": str(work / "server.jsonl")}
        if static_root is not None:  # collected already (benchmarks/run.py)
            environment["STATIC_ROOT"] = str(static_root)
        server = start_server(environment, port, server_log)
        try:
            cpu_before = server_cpu_seconds(server, database_url)
            machine_before, load_before = machine_cpu_seconds(), os.getloadavg()[0]
            locust_started = time.monotonic()
            client_cpu = run_locust(
                port=port, users=users, seconds=seconds, work=work, plan=plan_path,
                saves=work / "saves.jsonl", requests=work / "requests.jsonl", wait=wait)
            machine_after, load_after = machine_cpu_seconds(), os.getloadavg()[0]
            locust_seconds = time.monotonic() - locust_started
            cpu_after = server_cpu_seconds(server, database_url)
        finally:
            stop_server(server)
        elapsed = time.monotonic() - started
        logged, by_request = request_figures(work / "requests.jsonl", work / "server.jsonl")
        attempts, acks = read_saves(work / "saves.jsonl")
        server_errors = [line for line in server_log.read_text(errors="replace").splitlines()
                         if " ERROR " in line or "Traceback" in line or "Error:" in line]
    lost, unacknowledged, problems = check_saves(database_url, attempts, acks, before)
    work_times = [e["ms"] for e in logged if e["name"] not in LOGIN and e["ms"] is not None]
    failures = defaultdict(int)
    for entry in logged:
        if entry["error"]:
            failures[f"{entry['name']}: {entry['error']}"] += 1
    steady, window = steady_throughput(logged)
    cpu = ({k: cpu_after[k] - cpu_before.get(k, 0.0) for k in cpu_after}
           if cpu_before is not None and cpu_after is not None else None)
    machine = (machine_after - machine_before
               if machine_before is not None and machine_after is not None else None)
    # What the rest of the machine took of its cores while the users ran: neither the server
    # (gunicorn and its PostgreSQL back-ends) nor the load generator.
    others = (max(0.0, machine - sum(cpu.values()) - client_cpu) / (
        (os.cpu_count() or 1) * locust_seconds) if machine is not None and cpu else None)
    return {
        "users": users,
        "seconds": seconds,
        "wait": wait,
        "workers": gunicorn_workers(),
        "requests": len(work_times),
        "p50_ms": round(percentile(work_times, 0.50)),
        "p95_ms": round(percentile(work_times, 0.95)),
        "errors": sum(failures.values()),
        "saves": len(acks),
        "lost_saves": lost,
        "requests_per_s": round(len(logged) / seconds, 1),
        "steady_requests_per_s": round(steady, 1),
        "steady_seconds": round(window, 1),
        # Server CPU per request, log-ins included (each an Argon2 hash): the work the server
        # does, which other processes on a shared machine do not change much.
        "server_cpu_seconds": cpu,
        "server_cpu_ms_per_request": round(1000 * sum(cpu.values()) / len(logged), 1)
        if cpu and logged else None,
        # The load generator's own CPU (locust, its HTML parsing): taken from the same cores.
        "client_cpu_seconds": round(client_cpu, 1),
        "client_cpu_ms_per_request": round(1000 * client_cpu / len(logged), 1)
        if logged else None,
        # Every process of the machine (other users of a shared machine included), and the
        # load average at the start and the end of the run.
        "machine_cpu_seconds": round(machine, 1) if machine is not None else None,
        "cores": os.cpu_count(),
        "others_cpu_share": round(others, 2) if others is not None else None,
        "load_average": [round(load_before, 1), round(load_after, 1)],
        "unacknowledged_saves": unacknowledged,
        "by_request": by_request,
        "failures": [f"{count} × {what}" for what, count in failures.items()],
        "problems": problems,
        "server_errors": server_errors[:20],
        "elapsed_s": round(elapsed, 1),
    }


# --- Standalone ------------------------------------------------------------------------------


def recreate_database(database_url: str, *, subjects: int, seed: int) -> None:
    """Drop and create the database, migrate it and generate the synthetic trial."""
    parts = urlsplit(database_url)
    name = parts.path.lstrip("/")
    if not name or name in ("postgres", "template0", "template1"):
        raise SystemExit(f"Refusing to drop the database {name!r}.")
    maintenance = urlunsplit(parts._replace(path="/postgres"))
    with psycopg.connect(maintenance, autocommit=True) as connection:
        connection.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(
            sql.Identifier(name)))
        connection.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    env = {k: v for k, v in os.environ.items() if k != "REDIS_URL"} | {
        "DATABASE_URL": database_url}
    for step in (["migrate", "--noinput", "-v", "0"],
                 ["seed_trial", "--subjects", str(subjects), "--seed", str(seed)]):
        started = time.monotonic()
        subprocess.run([PYTHON, "manage.py", *step], cwd=ROOT, env=env, check=True,
                       stdout=subprocess.DEVNULL)
        print(f"  {step[0]}: {time.monotonic() - started:.0f} s", file=sys.stderr, flush=True)


def print_table(result: dict) -> None:
    print(f"\nLoad test: {result['users']} users for {result['seconds']} s (think time "
          f"{result['wait']} s), gunicorn ({result['workers']} workers) + PostgreSQL, "
          f"{result['requests_per_s']} requests/s over the run, "
          f"{result['steady_requests_per_s']} requests/s once all had logged in "
          f"({result['steady_seconds']} s)\n")
    print("Time as the simulated user saw it, then inside the server (the worker's wall and "
          "CPU time):\n")
    print(f"{'request':<34}{'count':>7}{'errors':>8}{'p50 ms':>8}{'p95 ms':>8}"
          f"{'server p50':>12}{'p95':>6}{'CPU':>6}")
    for row in result["by_request"]:
        inside = (f"{row['server_p50_ms']:>12.0f}{row['server_p95_ms']:>6.0f}"
                  f"{row['server_cpu_ms']:>6.0f}" if "server_p50_ms" in row else "")
        print(f"{row['name']:<34}{row['requests']:>7}{row['failures']:>8}"
              f"{row['p50_ms']:>8.0f}{row['p95_ms']:>8.0f}{inside}")
    print(f"{'page views and saves (no log-in)':<34}{result['requests']:>7}{'':>8}"
          f"{result['p50_ms']:>8.0f}{result['p95_ms']:>8.0f}")
    if result["server_cpu_seconds"]:
        cpu = result["server_cpu_seconds"]
        print(f"\nServer CPU: gunicorn {cpu['gunicorn']:.1f} s, PostgreSQL {cpu['postgres']:.1f} s"
              f", {result['server_cpu_ms_per_request']} ms a request (log-ins included)")
    print(f"Load generator CPU: {result['client_cpu_seconds']} s, "
          f"{result['client_cpu_ms_per_request']} ms a request")
    if result.get("machine_cpu_seconds") is not None:
        print(f"Machine: {result['machine_cpu_seconds']} CPU seconds used by every process "
              f"during the run ({result['cores']} cores × {result['seconds']} s available), "
              f"{100 * (result['others_cpu_share'] or 0):.0f} % of the cores by other "
              f"processes, load average {result['load_average'][0]} → "
              f"{result['load_average'][1]}")
    print(f"\nErrors (every request): {result['errors']}")
    print(f"Saves acknowledged: {result['saves']}; lost: {result['lost_saves']}; committed "
          f"without acknowledgement: {result['unacknowledged_saves']}")
    for heading, lines in (("Errors", result["failures"]), ("Problems", result["problems"]),
                           ("Server log", result["server_errors"])):
        if lines:
            print(f"\n{heading}:")
            for line in lines[:20]:
                print(f"  {line}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--database-url", default=os.environ.get("DATABASE_URL"),
                        help="PostgreSQL database of a seeded trial (default: DATABASE_URL).")
    parser.add_argument("--seed-subjects", type=int,
                        help="Drop and recreate the database with a synthetic trial of N "
                             "subjects first.")
    parser.add_argument("--seed", type=int, default=2,
                        help="Seed of the synthetic trial (default 2, as benchmarks/run.py).")
    parser.add_argument("--users", type=int, default=20)
    parser.add_argument("--seconds", type=int, default=60)
    parser.add_argument("--port", type=int, default=8765)
    parser.add_argument("--wait", default=os.environ.get("EDC_LOAD_WAIT", DEFAULT_WAIT),
                        metavar="MIN,MAX", help="think time between two actions, seconds "
                        f"(default {DEFAULT_WAIT})")
    parser.add_argument("--json", action="store_true", help="Print the result as JSON.")
    options = parser.parse_args()
    if not options.database_url or not options.database_url.startswith("postgres"):
        parser.error("give --database-url postgres://...")
    started = time.monotonic()
    if options.seed_subjects:
        print(f"Recreating the database with {options.seed_subjects} subjects …",
              file=sys.stderr, flush=True)
        try:
            recreate_database(options.database_url, subjects=options.seed_subjects,
                              seed=options.seed)
        except subprocess.CalledProcessError as failed:
            sys.exit(f"{' '.join(failed.cmd[1:])} failed (exit {failed.returncode}).")
    print(f"Load test: {options.users} users for {options.seconds} s …", file=sys.stderr,
          flush=True)
    result = run_load_test(options.database_url, users=options.users,
                           seconds=options.seconds, port=options.port, wait=options.wait)
    if options.json:
        print(json.dumps(result, indent=2))
    else:
        print_table(result)
    print(f"\nWall time: {time.monotonic() - started:.0f} s", file=sys.stderr)
    sys.exit(0 if not (result["errors"] or result["lost_saves"] or result["problems"]) else 1)


if __name__ == "__main__":
    main()
