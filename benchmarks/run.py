"""The benchmark suite (``make bench``, ``make bench-quick``): builds synthetic trials on
PostgreSQL, measures, and prints one table with every target of issue 15 beside its figure,
met or not met.

    python benchmarks/run.py [--quick] [--sizes 60 600] [--reminder-visits 10000 100000]
                             [--skip-load] [--load-seconds 60] [--load-wait 0.5,2]

``--quick`` (``make bench-quick``): 60 subjects, no reminder jobs, no load test.

Needs PostgreSQL (``BENCH_DATABASE_URL``, default ``postgres://postgres@127.0.0.1:5432``); it
creates and drops its own databases, all named ``edc_bench_*`` (``BENCH_DB_PREFIX`` names
another prefix). The migrations run once, into ``edc_bench_migrated``, which every database the
run fills is copied from. Each size is seeded once by
``manage.py seed_trial`` (timed) into ``edc_bench_seed_N``; every measurement that edits data
runs on a copy made with ``CREATE DATABASE … TEMPLATE`` (the load test on a copy of the
smallest size), so nothing is seeded twice. The reminder jobs' schedule (10,000 and 100,000
visits, built one save at a time) is kept between runs of the same schema and schedule code
as ``edc_bench_remcache_*`` and copied too (the jobs run as of the time it was built). The
measurements run in child processes under the production settings (``DEBUG=0``), so each
export's peak memory is its own. Each step's wall
time, the CPU time of its processes and the load average at its start are printed as it ends,
listed at the end and kept in the JSON (``steps``).
"""

import argparse
import contextlib
import hashlib
import json
import os
import platform
import re
import resource
import statistics
import subprocess
import sys
import tempfile
import time
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
PYTHON = sys.executable
BASE_URL = os.environ.get("BENCH_DATABASE_URL", "postgres://postgres@127.0.0.1:5432").rstrip("/")
# Every database the benchmarks create, copy and drop is named PREFIX_…: a second person on the
# same PostgreSQL runs them beside the first with another prefix (BENCH_DB_PREFIX=edc_bench_ann).
PREFIX = os.environ.get("BENCH_DB_PREFIX", "edc_bench")
if not re.fullmatch(r"edc_[a-z0-9_]+", PREFIX):
    raise SystemExit("BENCH_DB_PREFIX must look like edc_bench (edc_, then a-z, 0-9, _).")
FORMATS = ("csv", "xlsx", "xpt", "dta", "sav", "rds", "odm")
# Formats whose files are compared in size with the CSV file of the same data.
BINARY = ("xlsx", "xpt", "dta", "sav", "rds")
# Below this size a CSV file is mostly its header line, and a binary format's fixed header
# (a Stata or SPSS file's is a few kB) says nothing about how it stores data.
SMALLEST_COMPARED = 10_000
# A child process that runs a command and reports its wall time, peak memory (KiB) and exit
# code on its last line, after the command's own output.
_MEASURE = ("import resource, subprocess, sys, time; t = time.perf_counter(); "
            "r = subprocess.run(sys.argv[1:], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,"
            " text=True); sys.stdout.write(r.stdout); "
            "print(); print(time.perf_counter() - t, resource.getrusage(resource.RUSAGE_CHILDREN)"
            ".ru_maxrss, r.returncode)")

# The targets of issue 15 (600 subjects, this 2-core machine), in one place.
TARGET_SIZE = 600
SMALL_SIZE = 60
TARGETS = {
    "save_queries": 20,
    "save_p95_ms": 40,
    "chain_statements_per_row": 2,
    "seed_seconds": {60: 25, 600: 240},
    "page_median_ms": {"matrix (all sites)": 150, "dashboard": 150, "query list": 100},
    "page_growth": 1.5,
    "csv_copy_ratio": 3,
    "other_copy_ratio": 6,
    "export_peak_mb": 250,
    "export_peak_growth": 1.5,
    "binary_csv_ratio": 1.5,
    "bench_seconds": 15 * 60,
    "bench_quick_seconds": 3 * 60,
    "load_p95_ms": 250,
    "load_requests_per_s": 2 * 9.3,
    "reminders_100k_s": 2,
}


# Every step of the run: its wall time, the CPU time of the processes it ran (children of this
# one; PostgreSQL's back-ends are not counted) and the load average when it began, so a run on
# a shared machine shows which figure waited for the CPU and how long each part takes.
STEPS: list[dict] = []


@contextlib.contextmanager
def step(name: str):
    started, before = time.perf_counter(), resource.getrusage(resource.RUSAGE_CHILDREN)
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else None
    print(f"[step] {name} …", file=sys.stderr, flush=True)
    try:
        yield
    finally:
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        entry = {"step": name, "seconds": round(time.perf_counter() - started, 1),
                 "child_cpu_seconds": round(after.ru_utime + after.ru_stime
                                            - before.ru_utime - before.ru_stime, 1),
                 "load_average": round(load, 1) if load is not None else None}
        STEPS.append(entry)
        print(f"[step] {name}: {entry['seconds']:.1f} s (CPU of its processes "
              f"{entry['child_cpu_seconds']:.1f} s, load average {entry['load_average']})",
              file=sys.stderr, flush=True)


def steps_table(steps: list[dict]) -> str:
    """The steps of a run, the longest first, with the share of the run each took."""
    total = sum(s["seconds"] for s in steps) or 1
    lines = ["Steps (wall time, CPU time of the step's processes, load average at its start):"]
    for s in sorted(steps, key=lambda s: -s["seconds"]):
        lines.append(f"  {s['seconds']:7.1f} s {100 * s['seconds'] / total:5.1f} %  CPU "
                     f"{s['child_cpu_seconds']:6.1f} s  load {s['load_average']}  {s['step']}")
    return "\n".join(lines)


def database_url(name: str) -> str:
    return f"{BASE_URL}/{name}"


def _admin(*statements: str, retry_seconds: float = 0) -> None:
    """Run database-level statements on the maintenance database; retry while a template is
    in use (CREATE DATABASE … TEMPLATE fails while anybody is connected to it)."""
    import psycopg

    deadline = time.monotonic() + retry_seconds
    while True:
        try:
            with psycopg.connect(database_url("postgres"), autocommit=True) as connection:
                for statement in statements:
                    connection.execute(statement)
            return
        except psycopg.errors.ObjectInUse:
            if time.monotonic() > deadline:
                raise
            time.sleep(2)


def _own(name: str) -> str:
    if not name.startswith(f"{PREFIX}_"):
        raise ValueError("the benchmarks only drop their own databases")
    return name


def db(name: str) -> str:
    """The benchmarks' database called ``name``: ``PREFIX_name``."""
    return f"{PREFIX}_{name}"


def recreate(name: str) -> str:
    _admin(f'DROP DATABASE IF EXISTS "{_own(name)}" WITH (FORCE)', f'CREATE DATABASE "{name}"')
    return database_url(name)


def copy_database(template: str, name: str) -> str:
    """A fresh copy of a database seeded earlier (the measurements edit data): ``CREATE
    DATABASE … TEMPLATE``, or, while somebody else stays connected to the template (a shared
    seeded database), ``pg_dump | pg_restore`` of it."""
    import psycopg

    try:
        _admin(f'DROP DATABASE IF EXISTS "{_own(name)}" WITH (FORCE)',
               f'CREATE DATABASE "{name}" TEMPLATE "{template}"', retry_seconds=60)
    except psycopg.errors.ObjectInUse:
        if template.startswith(f"{PREFIX}_"):
            raise
        print(f"[copy] {template} is in use: copying it with pg_dump …", file=sys.stderr,
              flush=True)
        recreate(name)
        dump = subprocess.Popen(["pg_dump", "-Fc", "-d", database_url(template)],
                                stdout=subprocess.PIPE)
        subprocess.run(["pg_restore", "--no-owner", "-d", database_url(name)],
                       stdin=dump.stdout, check=True)
        dump.stdout.close()
        if dump.wait():
            raise RuntimeError(f"pg_dump of {template} failed") from None
    return database_url(name)


def drop(*names: str) -> None:
    _admin(*(f'DROP DATABASE IF EXISTS "{_own(n)}" WITH (FORCE)' for n in names))


def databases(prefix: str) -> list[str]:
    import psycopg

    with psycopg.connect(database_url("postgres")) as connection:
        return [row[0] for row in connection.execute(
            "SELECT datname FROM pg_database WHERE datname LIKE %s", [prefix + "%"])]


def env_for(url: str, work: Path | None = None) -> dict:
    """The production settings (DEBUG=0, static files collected), as the load test's server
    runs; tasks in-process (no REDIS_URL), mail kept in memory by the measuring scripts."""
    from benchmarks.load import server_environment

    env = server_environment(url, work or Path(tempfile.gettempdir()))
    env["DJANGO_SETTINGS_MODULE"] = "edc.settings"
    return env


def manage(env: dict, *args: str) -> float:
    started = time.perf_counter()
    subprocess.run([PYTHON, "manage.py", *args], cwd=ROOT, env=env, check=True,
                   stdout=subprocess.DEVNULL)
    return time.perf_counter() - started


def child_json(env: dict, script: str, *args: str) -> dict | list:
    done = subprocess.run([PYTHON, str(ROOT / "benchmarks" / script), *args], cwd=ROOT,
                          env=env, capture_output=True, text=True)
    if done.returncode:
        raise RuntimeError(f"{script} failed (exit {done.returncode}):\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


# --- Seeding, once per size ------------------------------------------------------------------


def migrated(work: Path) -> str:
    """An empty database with every migration applied, made once a run: each database the run
    fills (every size's trial, the reminder jobs' schedule) is a copy of it, so the migrations
    (tens of seconds of CPU) are not applied again for each."""
    name = db("migrated")
    if not getattr(migrated, "done", False):
        with step("migrate (once, for every database the run fills)"):
            manage(env_for(recreate(name), work), "migrate", "--noinput", "-v", "0")
        migrated.done = True
    return name


def seed(size: int, work: Path) -> tuple[str, float]:
    """Seed ``PREFIX_seed_N``: a copy of the migrated database, then ``seed_trial``, timed."""
    name = db(f"seed_{size}")
    url = copy_database(migrated(work), name)
    print(f"[{size} subjects] seeding …", file=sys.stderr, flush=True)
    with step(f"seed_trial {size} subjects"):
        return name, manage(env_for(url, work), "seed_trial", "--subjects", str(size),
                            "--seed", "1")


# --- Exports ---------------------------------------------------------------------------------


def startup_seconds(env: dict, runs: int = 3) -> float:
    """What an export pays before it exports: the interpreter, Django's set-up and the export
    command's imports (``manage.py export --help`` does all three, then stops). Median."""
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        subprocess.run([PYTHON, "manage.py", "export", "--help"], cwd=ROOT, env=env, check=True,
                       stdout=subprocess.DEVNULL)
        times.append(time.perf_counter() - started)
    return statistics.median(times)


_OWN_TIMING_KEYS = ("export_seconds", "seconds", "elapsed_seconds", "elapsed_s")


def own_timing(output: str) -> float | None:
    """The export's own time, when ``manage.py export`` reports it: a JSON line with one of
    ``_OWN_TIMING_KEYS``, or a line naming ``timing``/``seconds`` with a number of seconds."""
    for line in reversed(output.splitlines()):
        line = line.strip()
        if line.startswith("{"):
            try:
                data = json.loads(line)
            except ValueError:
                data = None
            if isinstance(data, dict):
                for key in _OWN_TIMING_KEYS:
                    if isinstance(data.get(key), int | float):
                        return float(data[key])
        if re.search(r"timing|seconds|export.* took", line, re.IGNORECASE):
            found = re.search(r"(\d+(?:\.\d+)?)\s*(?:s|sec|seconds)\b", line) or re.search(
                r"seconds[=:]\s*(\d+(?:\.\d+)?)", line)
            if found:
                return float(found.group(1))
    return None


def measure_export(env: dict, formats: str, output: Path, startup: float) -> dict:
    command = [PYTHON, "-c", _MEASURE, PYTHON, "manage.py", "export", "--user",
               "datamanager.trial", "--format", formats, "--output", str(output), "-v", "0"]
    done = subprocess.run(command, cwd=ROOT, env=env, check=True, capture_output=True,
                          text=True)
    *printed, last = done.stdout.rstrip("\n").splitlines()
    wall, peak_kib, code = last.split()
    own = own_timing("\n".join(printed))
    seconds = own if own is not None else max(0.0, float(wall) - startup)
    return {"seconds": seconds, "timing": "command" if own is not None else "wall - start-up",
            "wall_seconds": float(wall), "peak_mb": int(peak_kib) / 1024, "ok": code == "0",
            "bytes": output.stat().st_size if output.exists() else 0,
            "files": zip_files(output), "output": "\n".join(printed)[-500:] if code != "0"
            else ""}


def zip_files(path: Path) -> dict[str, int]:
    """Uncompressed size of each file inside the export's zip."""
    if not path.exists():
        return {}
    with zipfile.ZipFile(path) as archive:
        return {info.filename: info.file_size for info in archive.infolist()
                if not info.is_dir()}


def _dataset_of(exports: dict, xpt_names: dict[str, str]) -> dict[str, str]:
    """Data file → the dataset it holds (the name of its CSV file): the same name, or for an
    XPORT file (named in 8 characters) the dataset ``measure.py`` says."""
    found = {}
    for fmt in BINARY:
        for name in exports.get(fmt, {}).get("files", {}):
            stem = Path(name).stem
            found[name] = xpt_names.get(stem, stem) if fmt == "xpt" else stem
    return found


def binary_sizes(exports: dict, xpt_names: dict[str, str]) -> dict:
    """Each binary format's data files against the CSV files of the same data, from the exports
    of one format each: in total, and per dataset (the largest ratio over datasets whose CSV
    is at least ``SMALLEST_COMPARED`` bytes)."""
    csv = {Path(n).stem: b for n, b in exports.get("csv", {}).get("files", {}).items()
           if n.startswith("csv/")}
    dataset_of = _dataset_of(exports, xpt_names)
    result = {}
    for fmt in BINARY:
        files = {n: b for n, b in exports.get(fmt, {}).get("files", {}).items()
                 if n.endswith(f".{fmt}") and not n.startswith("dictionary/")}
        if not files or not csv:
            continue
        compared = {dataset_of[n]: b / csv[dataset_of[n]] for n, b in files.items()
                    if dataset_of.get(n) in csv and csv[dataset_of[n]] >= SMALLEST_COMPARED}
        worst = max(compared.items(), key=lambda item: item[1], default=(None, None))
        result[fmt] = {"worst_dataset": worst[0], "worst_ratio": worst[1],
                       "datasets_compared": len(compared),
                       "total_ratio": sum(files.values()) / sum(csv.values()),
                       "per_dataset": len(files) > 1}
    return result


# --- One size ----------------------------------------------------------------------------------


def run_size(size: int, template: str, work: Path, startup: float,
             formats: tuple[str, ...] = FORMATS) -> dict:
    url = copy_database(template, db(str(size)))
    env = env_for(url, work)
    with step(f"{size} subjects: saves, pages, COPY (measure.py)"):
        result = dict(child_json(env, "measure.py"))
    exports = {}
    for fmt in (*formats, ",".join(formats)) if len(formats) > 1 else formats:
        key = "all" if "," in fmt else fmt
        with step(f"{size} subjects: export {key}"):
            exports[key] = measure_export(env, fmt, work / f"{size}-{key}.zip", startup)
        (work / f"{size}-{key}.zip").unlink(missing_ok=True)
    result["exports"] = exports
    result["binary_sizes"] = binary_sizes(exports, result.get("xpt_names", {}))
    drop(db(str(size)))
    return result


# --- Reminder jobs -----------------------------------------------------------------------------


def reminders_key() -> str:
    """Changes with the schema and the schedule's code: a cached schedule is reused only while
    it is what a fresh build would give. Its dates are relative to the build, and the jobs run
    as of the build's time (``reminders.py --jobs``), so its age does not matter."""
    digest = hashlib.sha256()
    for path in sorted(ROOT.glob("*/migrations/0*.py")):
        digest.update(path.name.encode())
    for path in ("benchmarks/reminders.py", "edc/protocol.py", "visits/schedule.py"):
        digest.update((ROOT / path).read_bytes())
    return digest.hexdigest()[:10]


def run_reminders(visits: list[int], work: Path, *, fresh: bool = False) -> list:
    key = reminders_key()
    prefix = db("remcache_")
    stale = [n for n in databases(prefix) if fresh or not n.startswith(f"{prefix}{key}_")]
    if stale:
        drop(*stale)
    building = db("reminders_build")
    built = False
    results = []
    for target in sorted(visits):
        cache = f"{prefix}{key}_{target}"
        entry: dict = {"visits": target, "build_seconds": None, "reused": True}
        if cache not in databases(cache):
            if not built:
                smaller = [n for n in databases(f"{prefix}{key}_")
                           if int(n.rsplit("_", 1)[1]) < target]
                if smaller:
                    copy_database(max(smaller, key=lambda n: int(n.rsplit("_", 1)[1])),
                                  building)
                else:
                    copy_database(migrated(work), building)
                built = True
            with step(f"reminders: build the schedule to {target} visits"):
                grown = child_json(env_for(database_url(building), work), "reminders.py",
                                   "--build", str(target))
            entry |= {"build_seconds": grown["build_seconds"], "reused": False}
            copy_database(building, cache)
        url = copy_database(cache, db("reminders"))
        with step(f"reminders: jobs over {target} visits"):
            entry |= child_json(env_for(url, work), "reminders.py", "--jobs")
        results.append(entry)
    drop(building, db("reminders"))
    return results


# --- The table ---------------------------------------------------------------------------------


def verdict(ok: bool, measured_at: int | None = None) -> str:
    word = "met" if ok else "NOT MET"
    if measured_at is not None and measured_at != TARGET_SIZE:
        return f"{word} at {measured_at} only"
    return word


def _ms(value: float) -> str:
    return f"{value:.0f} ms" if value >= 10 else f"{value:.1f} ms"


def table(results: dict) -> list[tuple[str, str, str, str]]:
    """(measure, result, target, verdict) rows. A target set at 600 subjects is judged on the
    600 figures; when only smaller trials were measured, the largest is judged and the verdict
    says so."""
    rows: list[tuple[str, str, str, str]] = []
    sizes = {int(k): v for k, v in results["sizes"].items()}
    judged = TARGET_SIZE if TARGET_SIZE in sizes else max(sizes, default=None)
    small = SMALL_SIZE if SMALL_SIZE in sizes else min(sizes, default=None)
    both = judged is not None and small is not None and small < judged

    for size, r in sorted(sizes.items()):
        n = r["counts"]
        seconds = r["seed_seconds"]
        target = TARGETS["seed_seconds"].get(size)
        counts = f"{n['visits']} visits, {n['forms']} forms, {n['queries']} queries"
        rows.append((f"seed_trial {size} subjects",
                     (f"{seconds:.1f} s ({counts})" if seconds else
                      f"seeded earlier ({counts})"),
                     f"≤ {target} s" if target else "",
                     verdict(seconds <= target) if target and seconds else
                     ("not measured" if target else "")))

    for size, r in sorted(sizes.items()):
        s = r["save"]
        judge = size == judged
        rows.append((f"CRF save, {size} subjects ({s['saves']} saves): queries",
                     f"{s['queries_median']:.0f} median, {s['queries_max']} max",
                     f"≤ {TARGETS['save_queries']} (max)" if judge else "",
                     verdict(s["queries_max"] <= TARGETS["save_queries"], size) if judge
                     else ""))
        rows.append((f"CRF save, {size} subjects: time",
                     f"median {_ms(s['median_ms'])}, p95 {_ms(s['p95_ms'])}"
                     + (f" (Python CPU {_ms(s['cpu_median_ms'])} median)"
                        if "cpu_median_ms" in s else ""),
                     f"p95 ≤ {TARGETS['save_p95_ms']} ms" if judge else "",
                     verdict(s["p95_ms"] <= TARGETS["save_p95_ms"], size) if judge else ""))
        per_row = s.get("chain_statements_per_row")
        if per_row is not None:
            rows.append((f"chain append, {size} subjects (statements on the chain tables "
                         f"per chained row)",
                         f"{per_row:.2f} ({s['chain_statements']} statements, "
                         f"{s['chained_rows']} rows)",
                         f"≤ {TARGETS['chain_statements_per_row']}" if judge else "",
                         verdict(per_row <= TARGETS["chain_statements_per_row"], size)
                         if judge else ""))

    pages = next(iter(sizes.values()))["pages"] if sizes else {}
    for page in pages:
        limit = TARGETS["page_median_ms"].get(page)
        for size, r in sorted(sizes.items()):
            p = r["pages"][page]
            judge = limit is not None and size == judged
            rows.append((f"{page}, {size} subjects",
                         f"median {_ms(p['median_ms'])}, p95 {_ms(p['p95_ms'])}, "
                         f"{p['queries']} queries"
                         + (f" (Python CPU {_ms(p['cpu_median_ms'])})"
                            if "cpu_median_ms" in p else ""),
                         f"median ≤ {limit} ms" if judge else "",
                         verdict(p["median_ms"] <= limit, size) if judge else ""))
        if limit is not None and both:
            growth = sizes[judged]["pages"][page]["median_ms"] / max(
                sizes[small]["pages"][page]["median_ms"], 1e-9)
            rows.append((f"{page}: growth {small} → {judged} subjects",
                         f"× {growth:.2f} (median)", f"< × {TARGETS['page_growth']}",
                         verdict(growth < TARGETS["page_growth"])))
    if pages:
        queries_same = all(
            len({r["pages"][page]["queries"] for r in sizes.values()}) == 1 for page in pages)
        rows.append(("SQL queries per page independent of subjects",
                     "yes" if queries_same else "no", "yes", verdict(queries_same)))

    startup = results.get("export_startup_seconds")
    if startup is not None:
        rows.append(("export start-up (interpreter, Django, the command's imports)",
                     f"{startup:.2f} s (median of `manage.py export --help`)", "", ""))
    for size, r in sorted(sizes.items()):
        copy = r["copy"]["seconds"]
        judge = size == judged
        rows.append((f"COPY of the exported tables, {size} subjects",
                     f"{copy:.2f} s ({r['copy']['bytes'] / 1e6:.1f} MB, {r['copy']['tables']} "
                     f"tables)", "", ""))
        exports = r["exports"]
        for fmt, e in exports.items():
            ratio = e["seconds"] / copy if copy else float("inf")
            limit = (TARGETS["csv_copy_ratio"] if fmt == "csv" else
                     None if fmt == "all" else TARGETS["other_copy_ratio"])
            how = "" if e.get("timing") == "command" else " (wall less start-up)"
            result = (f"{e['seconds']:.2f} s{how} = {ratio:.1f} × COPY, peak "
                      f"{e['peak_mb']:.0f} MB" + ("" if e["ok"] else " (FAILED)"))
            if limit is not None:
                target = f"≤ {limit} × COPY, peak < {TARGETS['export_peak_mb']} MB"
                ok = e["ok"] and ratio <= limit and e["peak_mb"] < TARGETS["export_peak_mb"]
            else:
                parts = sum(x["seconds"] for f, x in exports.items() if f != "all")
                result += f"; parts {parts:.2f} s"
                target = f"≤ sum of parts, peak < {TARGETS['export_peak_mb']} MB"
                ok = (e["ok"] and e["seconds"] <= parts
                      and e["peak_mb"] < TARGETS["export_peak_mb"])
            rows.append((f"export {fmt}, {size} subjects", result, target if judge else "",
                         verdict(ok, size) if judge else ""))
        if judge:
            for fmt, b in r.get("binary_sizes", {}).items():
                if b["per_dataset"] and b["worst_ratio"] is not None:
                    shown = (f"largest × {b['worst_ratio']:.2f} ({b['worst_dataset']}, of "
                             f"{b['datasets_compared']} datasets with a CSV ≥ "
                             f"{SMALLEST_COMPARED // 1000} kB); in total × "
                             f"{b['total_ratio']:.2f}")
                    ok = b["worst_ratio"] <= TARGETS["binary_csv_ratio"]
                    target = f"each dataset ≤ × {TARGETS['binary_csv_ratio']} its CSV"
                else:
                    shown = f"in total × {b['total_ratio']:.2f} (one file for all datasets)"
                    ok = b["total_ratio"] <= TARGETS["binary_csv_ratio"]
                    target = f"≤ × {TARGETS['binary_csv_ratio']} the CSV files"
                rows.append((f"{fmt} files against CSV files, {size} subjects", shown, target,
                             verdict(ok, size)))
    if both:
        for fmt in sizes[judged]["exports"]:
            large = sizes[judged]["exports"][fmt]["peak_mb"]
            little = sizes[small]["exports"].get(fmt, {}).get("peak_mb")
            if not little:
                continue
            growth = large / little
            rows.append((f"export {fmt} peak memory growth {small} → {judged} subjects",
                         f"× {growth:.2f} ({little:.0f} → {large:.0f} MB)",
                         f"< × {TARGETS['export_peak_growth']}",
                         verdict(growth < TARGETS["export_peak_growth"])))

    for entry in results.get("reminders", []):
        total = sum(job["seconds"] for job in entry["jobs"].values())
        detail = ", ".join(f"{name} {job['seconds']:.2f} s" for name, job in entry["jobs"].items())
        big = entry["visits"] >= 100_000
        built = ("schedule reused" if entry.get("reused") else
                 f"schedule built in {entry['build_seconds']:.0f} s"
                 if entry.get("build_seconds") is not None else "")
        rows.append((f"reminder jobs, {entry['visits']} visits",
                     f"{total:.2f} s ({detail}; {built})" if built else f"{total:.2f} s "
                     f"({detail})", f"< {TARGETS['reminders_100k_s']} s" if big else "",
                     verdict(total < TARGETS["reminders_100k_s"]) if big else ""))

    load = results.get("load")
    if load:
        name = (f"load: {load['users']} users, {load['seconds']} s, think "
                f"{load.get('wait', '1,5').replace(',', '–')} s, gunicorn + PostgreSQL")
        cpu = load.get("server_cpu_ms_per_request")
        others = load.get("others_cpu_share")
        rows.append((name, f"{load['requests']} requests, p50 {load['p50_ms']:.0f} ms, "
                           f"p95 {load['p95_ms']:.0f} ms"
                           + (f", {load['workers']} workers" if "workers" in load else "")
                           + (f", server CPU {cpu:.0f} ms a request" if cpu else "")
                           + (f", other processes took {100 * others:.0f} % of the cores"
                              if others is not None else ""),
                     f"p95 ≤ {TARGETS['load_p95_ms']} ms",
                     verdict(load["p95_ms"] <= TARGETS["load_p95_ms"])))
        rows.append(("load: errors and saves",
                     f"{load['errors']} errors, {load['saves']} saves, {load['lost_saves']} "
                     f"lost", "0 errors, 0 lost",
                     verdict(load["errors"] == 0 and load["lost_saves"] == 0
                             and not load.get("problems"))))
        steady = load.get("steady_requests_per_s", load["requests_per_s"])
        rows.append(("load: throughput (all users started, log-ins excluded)",
                     f"{steady:.1f} req/s ({load['requests_per_s']:.1f} over the whole run)",
                     f"≥ {TARGETS['load_requests_per_s']:.1f} req/s",
                     verdict(steady >= TARGETS["load_requests_per_s"])))

    for size, reason in results.get("failed", {}).items():
        rows.append((f"{size} subjects", f"FAILED: {reason.splitlines()[-1][:80]}", "", "NOT MET"))
    quick = results.get("mode") == "quick"
    limit = TARGETS["bench_quick_seconds" if quick else "bench_seconds"]
    seconds = results.get("seconds", 0)
    rows.append((f"make {'bench-quick' if quick else 'bench'}: this run's wall time",
                 f"{seconds / 60:.1f} min", f"≤ {limit // 60} min",
                 verdict(seconds <= limit) if results.get("mode") in ("quick", "full")
                 else "(options differ from make's)"))
    return rows


def render(rows, header: str) -> str:
    titles = ("measure", "result", "target", "")
    widths = [max(len(str(r[i])) for r in [titles, *rows]) for i in range(4)]
    lines = [header, ""]
    line = "| " + " | ".join(t.ljust(w) for t, w in zip(titles, widths, strict=True)) + " |"
    lines += [line, "|" + "|".join("-" * (w + 2) for w in widths) + "|"]
    for row in rows:
        lines.append("| " + " | ".join(str(c).ljust(w) for c, w in zip(row, widths, strict=True))
                     + " |")
    met = sum(1 for r in rows if r[3].startswith("met"))
    missed = sum(1 for r in rows if r[3].startswith("NOT MET"))
    lines += ["", f"Targets: {met} met, {missed} not met."]
    return "\n".join(lines)


def machine() -> str:
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
        memory = int(Path("/proc/meminfo").read_text().split()[1]) // (1024 * 1024)
    except OSError:
        memory = 0
    import psycopg

    with psycopg.connect(database_url("postgres")) as connection:
        version = connection.execute("SHOW server_version").fetchone()[0]
    try:
        load = f" load average {os.getloadavg()[0]:.1f} at the start,"
    except OSError:
        load = ""
    return (f"{os.cpu_count()} cores ({cpu}),{load} {memory} GiB RAM, PostgreSQL {version}, "
            f"Python {platform.python_version()}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true",
                        help="make bench-quick: 60 subjects, no reminder jobs, no load test")
    parser.add_argument("--sizes", type=int, nargs="+",
                        help="trial sizes in subjects (default 60 600; 0: none)")
    parser.add_argument("--reminder-visits", type=int, nargs="*",
                        help="visits for the reminder jobs (default 10000 100000; none: skip)")
    parser.add_argument("--fresh-reminders", action="store_true",
                        help="rebuild the reminder jobs' schedule even if a copy is kept")
    parser.add_argument("--formats", default=",".join(FORMATS),
                        help="export formats to measure, comma-separated (default: all; "
                             "'all formats' is measured when there are two or more)")
    parser.add_argument("--skip-load", action="store_true")
    parser.add_argument("--load-users", type=int, default=20)
    parser.add_argument("--load-seconds", type=int, default=60)
    parser.add_argument("--load-wait", default=None, metavar="MIN,MAX",
                        help="each simulated user's think time between two actions, seconds "
                             "(default: load.py's)")
    parser.add_argument("--seeded", action="append", default=[], metavar="SIZE=DATABASE",
                        help="measure a copy of a database already seeded with SIZE subjects")
    parser.add_argument("--reminders-from", type=Path,
                        help="reuse the reminder figures of an earlier run's JSON")
    parser.add_argument("--json", type=Path, help="where the raw figures go (default "
                        "benchmarks/results.json; results-quick.json with --quick)")
    options = parser.parse_args()
    from benchmarks.load import DEFAULT_WAIT, run_load_test

    plain = (options.sizes is None and options.reminder_visits is None and not options.seeded
             and not options.reminders_from and not options.skip_load
             and options.load_wait is None and options.load_seconds == 60
             and options.formats == ",".join(FORMATS)
             and options.load_users == 20)
    mode = ("quick" if options.quick else "full") if plain else "custom"
    if options.sizes is None:
        options.sizes = [SMALL_SIZE] if options.quick else [SMALL_SIZE, TARGET_SIZE]
    options.sizes = [] if options.sizes == [0] else sorted(set(options.sizes))
    if options.reminder_visits is None:
        options.reminder_visits = [] if options.quick else [10_000, 100_000]
    skip_load = options.skip_load or options.quick
    options.json = options.json or ROOT / "benchmarks" / (
        "results-quick.json" if options.quick else "results.json")

    started = time.perf_counter()
    results: dict = {"machine": machine(), "mode": mode, "options": vars(options) | {
        "json": str(options.json), "reminders_from": str(options.reminders_from or "")},
        "targets": TARGETS, "sizes": {}}
    seeded = {int(k): v for k, v in (item.split("=", 1) for item in options.seeded)}
    templates: dict[int, str] = {}
    with tempfile.TemporaryDirectory(prefix="bench-") as tmp:
        work = Path(tmp)
        # Static files once, for the production settings every child runs under.
        with step("collectstatic"):
            manage(env_for(database_url("postgres"), work), "collectstatic", "--noinput",
                   "-v", "0")
        if options.sizes:
            with step("export start-up (3 × manage.py export --help)"):
                results["export_startup_seconds"] = startup_seconds(
                    env_for(database_url("postgres"), work))
        for size in options.sizes:
            seconds = None
            if size in seeded:
                templates[size] = seeded[size]
            else:
                templates[size], seconds = seed(size, work)
            try:
                results["sizes"][size] = {"seed_seconds": seconds} | run_size(
                    size, templates[size], work, results.get("export_startup_seconds", 0),
                    tuple(f for f in options.formats.split(",") if f))
            except (RuntimeError, subprocess.CalledProcessError, OSError) as failed:
                print(f"[{size} subjects] FAILED: {failed}", file=sys.stderr, flush=True)
                results.setdefault("failed", {})[size] = str(failed)[-2000:]
            # What is measured so far survives a run stopped half-way.
            options.json.write_text(json.dumps(results, indent=2, default=str))
        if options.reminders_from:
            results["reminders"] = json.loads(options.reminders_from.read_text())["reminders"]
        elif options.reminder_visits:
            results["reminders"] = run_reminders(options.reminder_visits, work,
                                                 fresh=options.fresh_reminders)
        if not skip_load:
            # The smallest trial seeded above, copied; seeded here only if none was.
            size = min(templates) if templates else SMALL_SIZE
            template = templates.get(size) or seed(size, work)[0]
            templates.setdefault(size, template)
            url = copy_database(template, db("load"))
            wait = options.load_wait or DEFAULT_WAIT
            print(f"[load] {options.load_users} users for {options.load_seconds} s on "
                  f"{size} subjects …", file=sys.stderr, flush=True)
            with step(f"load test ({options.load_seconds} s)"):
                results["load"] = run_load_test(url, users=options.load_users,
                                                seconds=options.load_seconds, wait=wait,
                                                static_root=work / "static")
            results["load"]["subjects"] = size
            drop(db("load"))
    drop(db("migrated"), *(db(f"seed_{size}") for size in templates if size not in seeded))
    results["seconds"] = time.perf_counter() - started
    results["steps"] = STEPS
    options.json.write_text(json.dumps(results, indent=2, default=str))
    print(steps_table(STEPS), file=sys.stderr)
    print(render(table(results), f"Benchmarks on {results['machine']} "
                                 f"{time.strftime('%Y-%m-%d')}, {mode} run, "
                                 f"{results['seconds'] / 60:.1f} min in all"))


if __name__ == "__main__":
    main()
