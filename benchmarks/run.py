"""The benchmark suite (``make bench``): builds synthetic trials on PostgreSQL, measures, and
prints one table with each figure beside its target (issue 9).

    python benchmarks/run.py [--sizes 60 600] [--reminder-visits 10000 100000] [--skip-load]

Needs PostgreSQL (``BENCH_DATABASE_URL``, default ``postgres://postgres@127.0.0.1:5432``); it
creates and drops its own databases, all named ``edc_bench_*``. Each size gets a fresh
database filled by ``manage.py seed_trial``; the measurements run in child processes, so each
export's peak memory is its own.
"""

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
PYTHON = sys.executable
BASE_URL = os.environ.get("BENCH_DATABASE_URL", "postgres://postgres@127.0.0.1:5432").rstrip("/")
FORMATS = ("csv", "xlsx", "xpt", "dta", "sav", "rds", "odm")
# A child process that runs a command and reports its wall time and peak memory (KiB).
_MEASURE = ("import resource, subprocess, sys, time; t = time.perf_counter(); "
            "r = subprocess.run(sys.argv[1:], stdout=subprocess.DEVNULL); "
            "print(time.perf_counter() - t, resource.getrusage(resource.RUSAGE_CHILDREN)"
            ".ru_maxrss, r.returncode)")

TARGETS = {
    "save_p95_ms": 100,
    "matrix_600_ms": 300,
    "export_copy_ratio": 3,
    "export_peak_mb": 300,
    "reminders_100k_s": 2,
}


def database_url(name: str) -> str:
    return f"{BASE_URL}/{name}"


def recreate(name: str) -> str:
    import psycopg

    if not name.startswith("edc_bench"):
        raise ValueError("the benchmarks only drop their own databases")
    with psycopg.connect(database_url("postgres"), autocommit=True) as connection:
        connection.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        connection.execute(f'CREATE DATABASE "{name}"')
    return database_url(name)


def env_for(url: str) -> dict:
    env = dict(os.environ, DATABASE_URL=url, DJANGO_SETTINGS_MODULE="edc.settings")
    env.pop("REDIS_URL", None)  # jobs run in-process, as the benchmark measures them
    return env


def manage(url: str, *args: str) -> float:
    started = time.perf_counter()
    subprocess.run([PYTHON, "manage.py", *args], cwd=ROOT, env=env_for(url), check=True,
                   stdout=subprocess.DEVNULL)
    return time.perf_counter() - started


def child_json(url: str, script: str, *args: str) -> dict | list:
    done = subprocess.run([PYTHON, str(ROOT / "benchmarks" / script), *args], cwd=ROOT,
                          env=env_for(url), check=True, capture_output=True, text=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def measure_export(url: str, formats: str, output: Path) -> dict:
    command = [PYTHON, "-c", _MEASURE, PYTHON, "manage.py", "export", "--user",
               "datamanager.trial", "--format", formats, "--output", str(output), "-v", "0"]
    done = subprocess.run(command, cwd=ROOT, env=env_for(url), check=True, capture_output=True,
                          text=True)
    seconds, peak_kib, code = done.stdout.split()
    return {"seconds": float(seconds), "peak_mb": int(peak_kib) / 1024, "ok": code == "0",
            "bytes": output.stat().st_size if output.exists() else 0}


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
    return (f"{os.cpu_count()} cores ({cpu}), {memory} GiB RAM, PostgreSQL {version}, "
            f"Python {platform.python_version()}")


def copy_of(template: str, size: int) -> str:
    """A fresh copy of a database seeded earlier (the measurements edit data)."""
    import psycopg

    name = f"edc_bench_{size}"
    with psycopg.connect(database_url("postgres"), autocommit=True) as connection:
        connection.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        connection.execute(f'CREATE DATABASE "{name}" TEMPLATE "{template}"')
    return database_url(name)


def run_size(size: int, tmp: Path, seeded: str = "") -> dict:
    if seeded:
        url, seed = copy_of(seeded, size), None
    else:
        url = recreate(f"edc_bench_{size}")
        print(f"[{size} subjects] migrating and seeding …", file=sys.stderr, flush=True)
        manage(url, "migrate", "--noinput", "-v", "0")
        seed = manage(url, "seed_trial", "--subjects", str(size), "--seed", "1")
    result = {"seed_seconds": seed, "url": url}
    result |= child_json(url, "measure.py")
    exports = {}
    for fmt in (*FORMATS, ",".join(FORMATS)):
        print(f"[{size} subjects] export {fmt} …", file=sys.stderr, flush=True)
        exports["all" if "," in fmt else fmt] = measure_export(url, fmt, tmp / f"{size}-{fmt}.zip")
    result["exports"] = exports
    return result


def run_reminders(visits: list[int]) -> list:
    url = recreate("edc_bench_reminders")
    print(f"[reminders] building {max(visits)} visits …", file=sys.stderr, flush=True)
    manage(url, "migrate", "--noinput", "-v", "0")
    return child_json(url, "reminders.py", "--visits", *map(str, visits))


def verdict(ok: bool) -> str:
    return "met" if ok else "NOT MET"


def table(results: dict) -> list[tuple[str, str, str, str]]:
    rows: list[tuple[str, str, str, str]] = []
    sizes = results["sizes"]
    for size, r in sizes.items():
        n = r["counts"]
        seconds = r["seed_seconds"]
        rows.append((f"seed_trial {size} subjects",
                     (f"{seconds:.0f} s" if seconds else "seeded earlier")
                     + f" ({n['visits']} visits, {n['forms']} forms, {n['queries']} queries)",
                     "< 120 s" if size == 600 else "",
                     verdict(seconds < 120) if size == 600 and seconds else ""))
    for size, r in sizes.items():
        s = r["save"]
        rows.append((f"CRF save, {size} subjects ({s['saves']} saves)",
                     f"median {s['median_ms']:.0f} ms, p95 {s['p95_ms']:.0f} ms, "
                     f"{s['queries_median']:.0f} queries (max {s['queries_max']})",
                     "p95 < 100 ms", verdict(s["p95_ms"] < TARGETS["save_p95_ms"])))
    pages = next(iter(sizes.values()))["pages"] if sizes else {}
    for page in pages:
        for size, r in sizes.items():
            p = r["pages"][page]
            target = "< 300 ms" if page.startswith("matrix") and size >= 600 else ""
            ok = verdict(p["median_ms"] < TARGETS["matrix_600_ms"]) if target else ""
            rows.append((f"{page}, {size} subjects",
                         f"median {p['median_ms']:.0f} ms, p95 {p['p95_ms']:.0f} ms, "
                         f"{p['queries']} queries", target, ok))
    if pages:
        queries_same = all(
            len({r["pages"][page]["queries"] for r in sizes.values()}) == 1 for page in pages)
        rows.append(("SQL queries per page independent of subjects",
                     "yes" if queries_same else "no", "yes", verdict(queries_same)))
    for size, r in sizes.items():
        copy = r["copy"]["seconds"]
        rows.append((f"COPY of the exported tables, {size} subjects",
                     f"{copy:.2f} s ({r['copy']['bytes'] / 1e6:.1f} MB, {r['copy']['tables']} "
                     f"tables)", "", ""))
        for fmt, e in r["exports"].items():
            ratio = e["seconds"] / copy if copy else 0
            target = ok = ""
            if size >= 600:
                target = "≤ 3 × COPY, < 300 MB"
                ok = verdict(e["ok"] and ratio <= TARGETS["export_copy_ratio"]
                             and e["peak_mb"] < TARGETS["export_peak_mb"])
            rows.append((f"export {fmt}, {size} subjects",
                         f"{e['seconds']:.1f} s = {ratio:.1f} × COPY, peak {e['peak_mb']:.0f} MB"
                         + ("" if e["ok"] else " (FAILED)"), target, ok))
    if len(sizes) >= 2:
        small, large = (sizes[k] for k in sorted(sizes)[:1] + sorted(sizes)[-1:])
        growth = large["exports"]["all"]["peak_mb"] / max(small["exports"]["all"]["peak_mb"], 1)
        factor = large["counts"]["subjects"] / max(small["counts"]["subjects"], 1)
        rows.append(("export peak memory growth (all formats)",
                     f"× {growth:.2f} for × {factor:.0f} subjects", "less than linear",
                     verdict(growth < factor)))
    for entry in results.get("reminders", []):
        total = sum(job["seconds"] for job in entry["jobs"].values())
        detail = ", ".join(f"{name} {job['seconds']:.2f} s" for name, job in entry["jobs"].items())
        big = entry["visits"] >= 100_000
        rows.append((f"reminder jobs, {entry['visits']} visits", f"{total:.2f} s ({detail})",
                     "< 2 s" if big else "", verdict(total < TARGETS["reminders_100k_s"])
                     if big else ""))
    load = results.get("load")
    if load:
        rows.append((f"load: {load['users']} users, {load['seconds']} s, gunicorn + PostgreSQL",
                     f"{load['requests']} requests, p50 {load['p50_ms']:.0f} ms, "
                     f"p95 {load['p95_ms']:.0f} ms, {load['errors']} errors, "
                     f"{load['saves']} saves, {load['lost_saves']} lost",
                     "0 errors, 0 lost", verdict(load["errors"] == 0 and load["lost_saves"] == 0)))
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
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[60, 600],
                        help="trial sizes in subjects (0: none)")
    parser.add_argument("--reminder-visits", type=int, nargs="*", default=[10_000, 100_000])
    parser.add_argument("--skip-load", action="store_true")
    parser.add_argument("--seeded", action="append", default=[], metavar="SIZE=DATABASE",
                        help="measure a copy of a database already seeded with SIZE subjects")
    parser.add_argument("--reminders-from", type=Path,
                        help="reuse the reminder figures of an earlier run's JSON")
    parser.add_argument("--json", type=Path, default=ROOT / "benchmarks" / "results.json")
    options = parser.parse_args()
    import tempfile

    started = time.perf_counter()
    results: dict = {"machine": machine(), "sizes": {}}
    options.sizes = [] if options.sizes == [0] else options.sizes
    with tempfile.TemporaryDirectory(prefix="bench-") as tmp:
        seeded = dict(item.split("=", 1) for item in options.seeded)
        for size in sorted(options.sizes):
            results["sizes"][size] = run_size(size, Path(tmp), seeded.get(str(size), ""))
    if options.reminders_from:
        results["reminders"] = json.loads(options.reminders_from.read_text())["reminders"]
    elif options.reminder_visits:
        results["reminders"] = run_reminders(options.reminder_visits)
    if not options.skip_load:
        from benchmarks.load import run_load_test

        print("[load] 20 users for 60 s …", file=sys.stderr, flush=True)
        results["load"] = run_load_test(recreate_seeded(min(options.sizes or [60])))
    results["seconds"] = time.perf_counter() - started
    options.json.write_text(json.dumps(results, indent=2, default=str))
    print(render(table(results), f"Benchmarks on {results['machine']}, "
                                 f"{time.strftime('%Y-%m-%d')}, "
                                 f"{results['seconds'] / 60:.0f} min in all"))


def recreate_seeded(size: int) -> str:
    """A fresh seeded database for the load test (the measurements edited the others)."""
    url = recreate("edc_bench_load")
    manage(url, "migrate", "--noinput", "-v", "0")
    manage(url, "seed_trial", "--subjects", str(size), "--seed", "2")
    return url


if __name__ == "__main__":
    main()
