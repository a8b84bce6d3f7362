"""gunicorn's production settings (``gunicorn.conf.py``, unchanged) plus two server hooks that
write, for every request a worker serves, its name, the worker's wall and CPU time and the
server's clock, one JSON line per request to the file in ``EDC_LOAD_SERVER_LOG``.

The load test (``benchmarks/load.py``) starts gunicorn with this file, so it can put the time
a request spent inside the server beside the time the simulated user saw: what lies between
the two is the wait for a free worker and the client's own delays (on a 2-core machine the
load generator shares the CPU with the server). The hooks read two clocks and write one line;
sync workers serve one request at a time, so a worker's CPU clock between the hooks is that
request's Python CPU time (PostgreSQL's back-end is counted apart, by ``load.py``).
"""

import json
import os
import runpy
import time
from pathlib import Path

globals().update({name: value for name, value in
                  runpy.run_path(str(Path(__file__).resolve().parent.parent / "gunicorn.conf.py"))
                  .items() if not name.startswith("_")})

_LOG = os.environ.get("EDC_LOAD_SERVER_LOG", "")


def pre_request(worker, req) -> None:
    worker.edc_started = (time.perf_counter(), time.process_time())


def post_request(worker, req, environ, resp) -> None:
    started = getattr(worker, "edc_started", None)
    if not _LOG or started is None:
        return
    wall = (time.perf_counter() - started[0]) * 1000
    cpu = (time.process_time() - started[1]) * 1000
    name = environ.get("HTTP_X_LOAD_REQUEST") or f"{req.method} {req.path}"
    # One write of one short line per request, in append mode: lines of the workers never mix.
    with open(_LOG, "a") as log:
        log.write(json.dumps({"name": name, "wall_ms": round(wall, 2), "cpu_ms": round(cpu, 2),
                              "status": resp.status_code, "pid": os.getpid(),
                              "t": time.time()}) + "\n")
