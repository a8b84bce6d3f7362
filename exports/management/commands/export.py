"""Export the trial's datasets to one zip, from the command line, with a progress bar.

    python manage.py export --user datamanager --format csv,xlsx,xpt,dta,sav,rds,odm \\
        [--profile blinded|unblinded|deidentified] [--as-of 2026-10-01T00:00Z] [--output x.zip]
        [--language en|zh-hans]

Labels, value labels and the data dictionary are English unless ``--language`` asks for
another language of the EDC; SAS XPORT files stay English (ASCII) whatever is asked.

The export is attributed to ``--user`` and checked against that user's role, like one started
on the exports page, and recorded in the audit trail.

``--timings`` prints one more line, for benchmarks, after the export:

    export seconds=3.412 startup=1.207 peak_mb=118.4 rows=123456 files=114

``seconds``: the export itself (reading, writing, zipping, auditing), from the command's
start to its end; ``startup``: the interpreter and Django before the command ran (None where
the process's start time cannot be read); ``peak_mb``: the process's peak resident memory;
``rows``: the data rows of the CSV files; ``files``: the files in the zip.
"""

import datetime as dt
import os
import resource
import time
from pathlib import Path

from django.conf import settings
from django.core.exceptions import PermissionDenied
from django.core.management.base import BaseCommand, CommandError
from django.utils.dateparse import parse_datetime
from tqdm import tqdm

from edc.models import User
from exports import package
from exports.dictionary import Profile


def parse_as_of(value: str) -> dt.datetime:
    try:
        moment = parse_datetime(value)
    except ValueError:
        raise CommandError(f"--as-of: not a date or time: {value!r}") from None
    if moment is None:
        try:
            moment = dt.datetime.combine(dt.date.fromisoformat(value), dt.time.max)
        except (ValueError, OverflowError):
            raise CommandError(f"--as-of: not a date or time: {value!r}") from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=dt.UTC)
    if (error := package.as_of_error(moment)) is not None:
        raise CommandError(f"--as-of: {error}")
    return moment


class Command(BaseCommand):
    help = "Export every dataset in the chosen formats, with the data dictionary, as one zip."

    def add_arguments(self, parser) -> None:
        parser.add_argument("--user", required=True, help="who exports (their role decides)")
        parser.add_argument("--format", default="csv",
                            help=f"comma-separated: {', '.join(package.FORMATS)} or 'all'")
        parser.add_argument("--profile", default=Profile.BLINDED.value,
                            choices=[p.value for p in Profile])
        parser.add_argument("--as-of", dest="as_of", default="",
                            help="rebuild the data as they stood then (ISO date or time; UTC "
                                 "unless it says otherwise)")
        parser.add_argument("--language", default="en", choices=[c for c, _n in settings.LANGUAGES],
                            help="labels, value labels and data dictionary in this language "
                                 "(default English; SAS XPORT stays English)")
        parser.add_argument("--output", default="", help="zip path (default: ./<trial>-<time>.zip)")
        parser.add_argument("--timings", action="store_true",
                            help="print 'export seconds=… startup=… peak_mb=…' at the end")

    def handle(self, *args, user: str, format: str, profile: str, as_of: str, output: str,
               verbosity: int, timings: bool = False, language: str = "en",
               **options) -> None:
        started = time.perf_counter()
        startup = _process_age()
        try:
            exporter = User.objects.get(username=user, is_active=True)
        except User.DoesNotExist:
            raise CommandError(f"no active user {user!r}") from None
        formats = tuple(package.FORMATS) if format == "all" else tuple(
            f.strip() for f in format.split(",") if f.strip())
        moment = parse_as_of(as_of) if as_of else None
        try:
            request = package.ExportRequest(exporter, formats, Profile(profile), moment,
                                            language)
        except ValueError as error:
            raise CommandError(str(error)) from None
        now = dt.datetime.now(dt.UTC)
        destination = Path(output or f"{package._stem()}-{now:%Y%m%dT%H%M%SZ}.zip")

        bar = tqdm(total=package.steps(request), unit="step", disable=verbosity == 0,
                   file=self.stderr._out)

        def progress(done: int, total: int, label: str) -> None:
            bar.n = done
            bar.set_description(label)
            bar.refresh()

        try:
            result = package.build(request, destination, progress=progress)
        except PermissionDenied as error:
            raise CommandError(str(error)) from None
        finally:
            bar.close()
        self.stdout.write(
            f"{result.path}  {result.size} bytes  sha256 {result.sha256}  "
            f"{len(result.files)} files  data cut {result.data_cut.isoformat()}")
        if timings:
            seconds = time.perf_counter() - started
            peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB
            self.stdout.write(
                f"export seconds={seconds:.3f} "
                f"startup={'None' if startup is None else f'{startup:.3f}'} "
                f"peak_mb={peak_mb:.1f} rows={result.rows} files={len(result.files) + 1}")


def _process_age() -> float | None:
    """Seconds since this process started (Linux ``/proc``), or None elsewhere."""
    try:
        with open("/proc/self/stat") as stat:
            start_ticks = int(stat.read().rsplit(")", 1)[1].split()[19])
        with open("/proc/uptime") as uptime:
            now = float(uptime.read().split()[0])
    except (OSError, ValueError, IndexError):
        return None
    return max(0.0, now - start_ticks / os.sysconf("SC_CLK_TCK"))
