"""One export: every dataset in the chosen formats, the data dictionary and a manifest, in one
zip file.

- **Consistent:** on PostgreSQL the export reads in one REPEATABLE READ, READ ONLY transaction,
  so every file shows the same instant even while sites keep entering data.
- **Reproducible:** the data files depend only on the data and the parameters. Where a format
  stores a time (Excel properties, XPORT and SPSS headers, the ODM creation time) it is the
  time of the last change to the exported data, not the clock; zip entries carry it too.
  The manifest, which says when the export ran, differs between runs, and so does the ODM
  file's FileOID, which ODM requires to be unique for each file (the manifest names it).
- **Self-describing:** the manifest says what each dataset holds (the audit trail's content
  depends on who exports), the escape rule of the formats that cannot carry every character
  (:data:`exports.tabular.TEXT_ESCAPE_RULE`) and, in a de-identified export, how the
  pseudonymous subject key is made.
- **Read once, flat memory:** each dataset's rows stream from the database once (a
  server-side cursor on PostgreSQL); with several formats they are spooled to a temporary
  file that every writer reads in turn (:class:`Spool`), so no format reads the database
  again and the pipeline holds one block of rows at a time.
- **Audited:** an ``exported`` audit event records who, the parameters and the zip's SHA-256.
"""

import datetime as dt
import hashlib
import json
import pickle
import subprocess
import tempfile
import uuid
import zipfile
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from functools import cache
from importlib import metadata
from pathlib import Path

from django.conf import settings
from django.db import connection, transaction
from django.db.models import Max
from django.utils import timezone, translation
from django.utils.translation import gettext, gettext_lazy

from edc import protocol
from edc.audit import audit_event
from edc.models import AuditAction, User
from exports import codebook, csvfiles, sql
from exports.datasets import ExportContext, keyed_rows, rows
from exports.dictionary import PROFILE_LABELS, Profile, audit_scope, datasets
from exports.escape import TEXT_ESCAPE_RULE, XPT_LONG_TEXT_RULE

# Format code → label, in the order files are written.
FORMATS: dict[str, str] = {
    "csv": gettext_lazy("CSV (one file per dataset)"),
    "xlsx": gettext_lazy("Excel workbook (a sheet per dataset, and the dictionary)"),
    "xpt": gettext_lazy("SAS XPORT version 5 (FDA)"),
    "dta": gettext_lazy("Stata (.dta)"),
    "sav": gettext_lazy("SPSS (.sav)"),
    "rds": gettext_lazy("R (.rds, factors for coded values)"),
    "odm": gettext_lazy("CDISC ODM 1.3.2 XML (metadata, data and audit records)"),
}
TABLE_FORMATS = ("csv", "xpt", "dta", "sav", "rds")

Progress = Callable[[int, int, str], None]


def as_of_error(as_of: dt.datetime | None, now: dt.datetime | None = None) -> str | None:
    """Why ``as_of`` cannot be the time an export rebuilds the data at, or None: it must lie
    between the trial's start (``edc.protocol.TRIAL_START``) and now."""
    if as_of is None:
        return None
    # The date as written, in its own zone: no conversion, which fails for year 1.
    if as_of.date() < protocol.TRIAL_START:
        return gettext("A time before the trial began (%(start)s) holds no data.") % {
            "start": protocol.TRIAL_START.isoformat()}
    if timezone.is_naive(as_of):
        as_of = timezone.make_aware(as_of, dt.UTC)
    if as_of > (now or timezone.now()):
        return gettext("The time lies in the future.")
    return None


@dataclass(frozen=True)
class ExportRequest:
    user: User
    formats: tuple[str, ...] = ("csv",)
    profile: Profile = Profile.BLINDED
    as_of: dt.datetime | None = None
    # The language of the labels, value labels and dictionary; SAS XPORT stays English.
    language: str = "en"

    def __post_init__(self):
        unknown = set(self.formats) - set(FORMATS)
        if unknown or not self.formats:
            raise ValueError(f"unknown or no export format: {', '.join(sorted(unknown))}")
        if self.language not in dict(settings.LANGUAGES):
            raise ValueError(f"unknown export language: {self.language!r}")
        if (error := as_of_error(self.as_of)) is not None:
            raise ValueError(f"--as-of: {error}")


@dataclass
class ExportResult:
    path: Path
    sha256: str
    size: int
    data_cut: dt.datetime
    stamp: dt.datetime
    files: list[dict] = field(default_factory=list)

    @property
    def rows(self) -> int:
        return sum(f["rows"] for f in self.files if f["path"].startswith("csv/"))


@cache
def software_version() -> str:
    version = metadata.version("edc")
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=settings.BASE_DIR, capture_output=True,  # noqa: S607
            text=True, timeout=5, check=True,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        commit = ""
    return f"{version}+{commit}" if commit else version


def _history_models() -> list:
    from forms.models import CRF_MODELS
    from forms.quality.queries import Query, QueryMessage
    from visits.models import RandomizationSlot, Subject, Visit

    return [m.history.model for m in (Subject, Visit, RandomizationSlot, Query, QueryMessage,
                                      *CRF_MODELS.values())]


def last_change(cut: dt.datetime) -> dt.datetime:
    """The time of the last change to any exported record at or before ``cut``: what the
    data files are stamped with, so the same data give the same bytes."""
    times = [m.objects.filter(history_date__lte=cut).aggregate(t=Max("history_date"))["t"]
             for m in _history_models()]
    times = [t for t in times if t is not None]
    return max(times) if times else dt.datetime(2000, 1, 1, tzinfo=dt.UTC)


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as stream:
        for block in iter(lambda: stream.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _snapshot() -> None:
    """Read everything that follows in one consistent snapshot (PostgreSQL; SQLite's
    transaction is one already). Must be the transaction's first statement."""
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ READ ONLY")


def steps(request: ExportRequest) -> int:
    count = len(datasets(request.profile))
    return count + ("xlsx" in request.formats) + ("odm" in request.formats) + 2


def build(request: ExportRequest, destination: Path, *,
          progress: Progress | None = None) -> ExportResult:
    """Write the export of ``request`` as a zip at ``destination`` and audit it. Labels,
    value labels and the data dictionary are in ``request.language`` (English unless asked),
    whatever language the requester reads the pages in; SAS XPORT's are English (ASCII)."""
    with translation.override(request.language):
        return _build(request, destination, progress=progress)


def _build(request: ExportRequest, destination: Path, *,
           progress: Progress | None = None) -> ExportResult:
    progress = progress or (lambda done, total, label: None)
    total = steps(request)
    with tempfile.TemporaryDirectory(prefix="export-") as tmp:
        work = Path(tmp)
        outermost = not connection.in_atomic_block
        with transaction.atomic():
            if outermost:
                _snapshot()
            cut = request.as_of or timezone.now()
            context = ExportContext(request.user, request.profile, request.as_of)
            stamp = last_change(cut)
            file_oid = _file_oid(request, cut) if "odm" in request.formats else None
            files = _write_files(request, context, work, stamp, progress, total, file_oid)
        manifest = _manifest(request, files, cut, stamp, file_oid)
        (work / "manifest.json").write_text(json.dumps(manifest, indent=2, sort_keys=True))
        progress(total - 1, total, "zip")
        destination.parent.mkdir(parents=True, exist_ok=True)
        _zip(work, [*(f["path"] for f in files), "manifest.json"], destination, stamp)
    result = ExportResult(destination, _sha256(destination), destination.stat().st_size, cut,
                          stamp, files)
    audit_event(action=AuditAction.EXPORTED, user=request.user, detail={
        "formats": list(request.formats), "profile": str(request.profile),
        "as_of": request.as_of.isoformat() if request.as_of else None,
        "language": request.language, "data_cut": cut.isoformat(), "file": destination.name,
        "sha256": result.sha256,
        "files": len(files), "rows": result.rows,
    })
    progress(total, total, "done")
    return result


def _datasets(request: ExportRequest):
    return datasets(request.profile, audit_scope(request.user, request.profile))


class Spool:
    """The rows of one dataset, read once from the database and kept in a temporary file
    (pickled in blocks), for every writer of the export to read in turn: the database is read
    once per dataset whatever the formats, and memory holds one block of rows, not the
    dataset. Iterating gives the rows again, in the same order; :meth:`keyed` gives them with
    their record keys (:func:`exports.datasets.keyed_rows`), for the ODM file."""

    BLOCK = 2000

    def __init__(self, directory: Path, keyed: Iterable[tuple]):
        # Closed by ``close()``: the spool outlives this call.
        self.file = tempfile.TemporaryFile(dir=directory)  # noqa: SIM115
        self.count = 0
        block: list[tuple] = []
        for item in keyed:
            block.append(item)
            if len(block) == self.BLOCK:
                pickle.dump(block, self.file, protocol=pickle.HIGHEST_PROTOCOL)
                self.count += len(block)
                block = []
        if block:
            pickle.dump(block, self.file, protocol=pickle.HIGHEST_PROTOCOL)
            self.count += len(block)

    def keyed(self) -> Iterator[tuple]:
        self.file.seek(0)
        remaining = self.count
        while remaining:
            block = pickle.load(self.file)  # noqa: S301 (our own temporary file)
            remaining -= len(block)
            yield from block

    def __iter__(self) -> Iterator[tuple]:
        for _subject_pk, _visit_pk, row in self.keyed():
            yield row

    def __len__(self) -> int:
        return self.count

    def close(self) -> None:
        self.file.close()


def _write_files(request, context, work: Path, stamp, progress: Progress, total: int,
                 file_oid: str):
    chosen = _datasets(request)
    files: list[dict] = []
    done = 0

    def record(relative: str, count: int) -> None:
        path = work / relative
        files.append({"path": relative, "rows": count, "bytes": path.stat().st_size,
                      "sha256": _sha256(path)})

    writers = _table_writers(request.formats)
    # SAS XPORT v5 holds ASCII labels only: its datasets are described in English.
    if "xpt" in request.formats:
        with translation.override("en"):
            english = {d.name: d for d in _datasets(request)}
    for fmt in TABLE_FORMATS:
        if fmt in request.formats:
            (work / fmt).mkdir()
    # Each dataset is read from the database once. For CSV alone (or ODM alone) the rows
    # stream straight into the file; otherwise they are spooled to disk first, and the
    # spools kept for the Excel workbook and the ODM file, written last. The table writers
    # (XPORT, Stata, SPSS, R, Excel) always get a spool: rows they may read more than once.
    readers = (("csv" in request.formats) + len(writers) + ("xlsx" in request.formats)
               + ("odm" in request.formats))
    spooled = readers > 1 or bool(writers) or "xlsx" in request.formats
    keep = bool({"xlsx", "odm"} & set(request.formats))
    spools: dict[str, Spool] = {}
    try:
        for dataset in chosen:
            progress(done, total, dataset.name)
            if ("csv" in request.formats and not spooled and dataset.name in sql.CSV_BUILDERS
                    and sql.available()):
                # CSV is this dataset's only reader: PostgreSQL writes its lines.
                relative = f"csv/{dataset.name}.csv"
                record(relative, csvfiles.write_csv_lines(
                    work / relative, dataset, sql.CSV_BUILDERS[dataset.name](dataset, context)))
                done += 1
                continue
            if spooled:
                table = spools[dataset.name] = Spool(work, keyed_rows(dataset, context))
            else:
                table = rows(dataset, context)
            if "csv" in request.formats:
                relative = f"csv/{dataset.name}.csv"
                record(relative, csvfiles.write_csv(work / relative, dataset, table))
            for fmt, (write, name) in writers.items():
                if fmt in request.formats:
                    relative = name(dataset)
                    # XPORT writes the long texts' further pieces to a companion file.
                    extra: list = []
                    options = {"files": extra} if fmt == "xpt" else {}
                    described = english[dataset.name] if fmt == "xpt" else dataset
                    record(relative, write(work / relative, described, table, stamp=stamp,
                                           **options))
                    for path, count in extra:
                        record(path.relative_to(work).as_posix(), count)
            if not keep and dataset.name in spools:
                spools.pop(dataset.name).close()
            done += 1
        if "xlsx" in request.formats:
            from exports import tabular

            progress(done, total, "Excel workbook")
            relative = f"{_stem()}.xlsx"
            counts = tabular.write_xlsx(
                work / relative,
                ((d, spools[d.name] if d.name in spools else rows(d, context)) for d in chosen),
                codebook.entries(chosen), stamp=stamp)
            record(relative, sum(counts.values()))
            done += 1
        if "odm" in request.formats:
            from exports import odm

            progress(done, total, "CDISC ODM")
            relative = f"{_stem()}_odm.xml"
            count = odm.write_odm(work / relative, context, chosen, stamp=stamp,
                                  file_oid=file_oid,
                                  tables={name: spool.keyed for name, spool in spools.items()})
            record(relative, count)
            done += 1
    finally:
        for spool in spools.values():
            spool.close()
    progress(done, total, "data dictionary")
    (work / "dictionary").mkdir()
    entries = codebook.entries(chosen)
    record("dictionary/data_dictionary.csv",
           csvfiles.write_codebook_csv(work / "dictionary/data_dictionary.csv", entries))
    (work / "dictionary/data_dictionary.html").write_text(
        codebook.html(chosen, title=gettext("Data dictionary: %(trial)s (%(profile)s)") % {
            "trial": protocol.TRIAL_REGISTRY_ID, "profile": PROFILE_LABELS[request.profile]}),
        encoding="utf-8")
    record("dictionary/data_dictionary.html", len(entries))
    return files


def _table_writers(formats) -> dict:
    """format → (writer, file name of a dataset), for the formats written a dataset at a time
    besides CSV (pandas and the readstat writers load only when asked for)."""
    if not set(formats) & {"xpt", "dta", "sav", "rds"}:
        return {}
    from exports import tabular

    return {
        "xpt": (tabular.write_xpt, lambda d: f"xpt/{d.sas_name}.xpt"),
        "dta": (tabular.write_dta, lambda d: f"dta/{d.name}.dta"),
        "sav": (tabular.write_sav, lambda d: f"sav/{d.name}.sav"),
        "rds": (tabular.write_rds, lambda d: f"rds/{d.name}.rds"),
    }


def _stem() -> str:
    return protocol.TRIAL_REGISTRY_ID.lower()


def _file_oid(request: ExportRequest, cut: dt.datetime) -> str:
    """A FileOID no other file has (ODM 1.3.2: unique for each file): the trial, the profile,
    the data cut and this run's own random part."""
    return (f"{protocol.TRIAL_REGISTRY_ID}.{request.profile}."
            f"{cut.astimezone(dt.UTC):%Y%m%dT%H%M%SZ}.{uuid.uuid4().hex[:16]}")


def _manifest(request: ExportRequest, files: list[dict], cut, stamp,
              file_oid: str | None) -> dict:
    sites = sorted(set(context_sites(request.user)))
    chosen = _datasets(request)
    extra = {}
    if "xpt" in request.formats:
        extra["xpt_long_text"] = XPT_LONG_TEXT_RULE
    if file_oid:
        extra["odm_file_oid"] = file_oid
    if request.profile == Profile.DEIDENTIFIED:
        extra["subject_key"] = (
            "Each subject is named by a pseudonymous key, the same in every dataset and "
            "format of this and later exports (the ODM SubjectKey too): a keyed hash "
            "(HMAC-SHA256) of the subject's record number with a secret the server keeps, so "
            "it cannot be derived from the screening number or the subject ID.")
    return extra | {
        "datasets": [{"name": d.name, "label": d.label,
                      **({"audit_scope": d.extra["audit_scope"]} if "audit_scope" in d.extra
                         else {})} for d in chosen],
        "text_escape_rule": TEXT_ESCAPE_RULE,
        "trial": protocol.TRIAL_REGISTRY_ID,
        "software": {"name": "edc", "version": software_version()},
        "created_at": timezone.now().isoformat(),
        "requested_by": request.user.get_username(),
        "parameters": {
            "formats": list(request.formats),
            "profile": str(request.profile),
            "as_of": request.as_of.isoformat() if request.as_of else None,
            "language": request.language,
            "sites": sites,
        },
        "data_cut": cut.isoformat(),
        "last_change_in_data": stamp.isoformat(),
        "files": sorted(files, key=lambda f: f["path"]),
    }


def context_sites(user: User) -> list[str]:
    from edc.models import Site
    from edc.roles import scope_to_user

    return list(scope_to_user(Site.objects.all(), user, site_field="pk")
                .values_list("code", flat=True))


# Files compressed by their own format (an Excel package is a zip, SPSS .sav holds zlib
# blocks, R .rds is gzip): deflating them again costs time and saves nothing.
COMPRESSED_SUFFIXES = (".xlsx", ".sav", ".rds")


def _zip(work: Path, names: list[str], destination: Path, stamp: dt.datetime) -> None:
    date_time = stamp.astimezone(dt.UTC).timetuple()[:6]
    with zipfile.ZipFile(destination, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for name in sorted(names):
            info = zipfile.ZipInfo(name, date_time=date_time)
            info.compress_type = (zipfile.ZIP_STORED if name.endswith(COMPRESSED_SUFFIXES)
                                  else zipfile.ZIP_DEFLATED)
            info.external_attr = 0o644 << 16
            with open(work / name, "rb") as source, archive.open(info, "w") as target:
                while block := source.read(1 << 20):
                    target.write(block)


def export_path(run_pk: int) -> Path:
    return Path(settings.EXPORT_ROOT) / f"export-{run_pk:06d}.zip"
