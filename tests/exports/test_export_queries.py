"""An export reads a fixed number of SQL queries, whatever the number of subjects (issue 15):
each dataset is read once, as a stream, never a query per subject, record or field. Measured
with a small trial and again after more subjects, with forms, queries and edits, have joined.
Time is measured by the benchmarks (``make bench``), not here."""

import datetime as dt
import re
import zipfile
from decimal import Decimal

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from edc.roles import Role
from exports import odm as odm_module
from exports import package
from exports.dictionary import Profile
from forms.entry import services
from forms.models import VitalSigns
from tests.eligible import save
from tests.factories import UserFactory, randomization_list, randomized_subject


def vitals(**changes) -> dict:
    return {"measured_at": timezone.now() - dt.timedelta(minutes=5), "systolic_bp": 190,
            "diastolic_bp": 85, "heart_rate": 78, "temperature": Decimal("36.8"),
            "respiratory_rate": 16, "spo2": 97, "weight": Decimal("70.0")} | changes


@pytest.fixture
def grow(site, nurse):
    """Add ``n`` randomized subjects, each with vital signs out of range (an open query),
    edited once with a reason (a change in the audit trail)."""
    randomization_list(site, rows_per_stratum=40)

    def grow(n: int) -> None:
        for _ in range(n):
            subject = randomized_subject(site=site, user=nurse)
            crf = save(VitalSigns, subject, nurse, vitals(),
                       visit=subject.visits.get(code="D2"))
            services.crf_save(crf=crf, values=vitals(heart_rate=80), user=nurse,
                              expected_version=crf.version, complete=True,
                              reason="Transcription error corrected from the source")

    return grow


@pytest.fixture
def exporters(site):
    return {
        Profile.BLINDED: UserFactory(username="dm", role=Role.DATA_MANAGER),
        Profile.DEIDENTIFIED: UserFactory(username="dm2", role=Role.DATA_MANAGER),
        Profile.UNBLINDED: UserFactory(username="stat", role=Role.UNBLINDED_STATISTICIAN),
    }


def queries(user, tmp_path, formats: tuple[str, ...], profile: Profile, **kwargs) -> int:
    request = package.ExportRequest(user, formats, profile, **kwargs)
    with CaptureQueriesContext(connection) as captured:
        package.build(request, tmp_path / "export.zip")
    return len(captured)


CASES = [
    (("csv",), Profile.BLINDED),
    (("csv",), Profile.UNBLINDED),
    (("csv",), Profile.DEIDENTIFIED),
    (tuple(package.FORMATS), Profile.BLINDED),
]


@pytest.mark.parametrize(("formats", "profile"), CASES,
                         ids=[f"{'+'.join(f)}-{p.value}" for f, p in CASES])
def test_an_export_reads_the_same_number_of_queries_as_the_trial_grows(
    grow, exporters, tmp_path, formats, profile
):
    grow(2)
    small = queries(exporters[profile], tmp_path, formats, profile)
    grow(3)
    assert queries(exporters[profile], tmp_path, formats, profile) == small


def test_an_export_as_of_a_past_time_reads_the_same_number_of_queries_as_the_trial_grows(
    grow, exporters, tmp_path
):
    user = exporters[Profile.BLINDED]
    grow(2)
    cut = timezone.now()
    small = queries(user, tmp_path, ("csv",), Profile.BLINDED, as_of=cut)
    grow(3)
    assert queries(user, tmp_path, ("csv",), Profile.BLINDED, as_of=cut) == small


def test_all_formats_read_each_dataset_once(grow, exporters, tmp_path):
    """Every format of the export is written from one read of each dataset: all formats
    together read no more queries than CSV and ODM alone, the one format that reads
    histories of its own."""
    user = exporters[Profile.BLINDED]
    grow(2)
    every = queries(user, tmp_path, tuple(package.FORMATS), Profile.BLINDED)
    assert every == queries(user, tmp_path, ("csv", "odm"), Profile.BLINDED)


def test_the_odm_file_is_the_same_whether_it_reads_the_forms_or_takes_them_from_the_export(
    grow, exporters, tmp_path, monkeypatch
):
    """Alone, the ODM writer reads the CRF tables itself; beside other formats it takes the
    rows the export has read already (in the order of the subjects' ids): the same file,
    also when the subjects are written a few at a time."""
    user = exporters[Profile.BLINDED]
    grow(5)
    monkeypatch.setattr(odm_module, "SUBJECT_CHUNK", 2)

    def odm(formats, name) -> bytes:
        result = package.build(package.ExportRequest(user, formats), tmp_path / name)
        with zipfile.ZipFile(result.path) as archive:
            [entry] = [n for n in archive.namelist() if n.endswith("_odm.xml")]
            return re.sub(rb'FileOID="[^"]*"', b"", archive.read(entry))

    alone = odm(("odm",), "alone.zip")
    assert b"<ItemData" in alone
    assert odm(("csv", "xlsx", "odm"), "beside.zip") == alone


@pytest.mark.parametrize("formats", [("odm",), ("csv", "odm")], ids=["alone", "beside CSV"])
def test_the_odm_file_reads_the_same_number_of_queries_however_many_chunks_of_subjects(
    grow, exporters, tmp_path, monkeypatch, formats
):
    """The ODM file writes its subjects a chunk at a time, but reads each table once."""
    monkeypatch.setattr(odm_module, "SUBJECT_CHUNK", 2)
    user = exporters[Profile.BLINDED]
    grow(2)
    small = queries(user, tmp_path, formats, Profile.BLINDED)
    grow(3)
    assert queries(user, tmp_path, formats, Profile.BLINDED) == small
