"""On PostgreSQL the audit-trail CSV file is written by the database (``COPY``,
``exports.sql``); on SQLite by Python (``exports.datasets``). Both must write the same
bytes, for every profile and an export "as of" a past time, with awkward values: quotes,
commas, line breaks, long text, any Unicode, times in zones with odd offsets, deleted and
edited records."""

import datetime as dt
import zipfile
from decimal import Decimal

import pytest
from django.db import connection
from django.utils import timezone

from edc.history import system_writes
from edc.roles import Role
from edc.sources import Source, audit_source
from exports import package, sql
from exports.dictionary import Profile
from forms.entry import services
from forms.models import ConcomitantMedication, VitalSigns
from forms.quality import queries
from tests.eligible import save
from tests.factories import SiteFactory, UserFactory, randomization_list, randomized_subject

AWKWARD = 'He said "no, not today",\nthen left; 随访延迟 µ·⁹±≥ 😀 \r\n=1+1 \\u{41} \x0b end '
LONG = (AWKWARD * 100)[:4000]

on_postgresql = pytest.mark.skipif(connection.vendor != "postgresql",
                                   reason="the COPY path exists on PostgreSQL only")


def vitals(**changes) -> dict:
    return {"measured_at": timezone.now() - dt.timedelta(minutes=5), "systolic_bp": 190,
            "diastolic_bp": 85, "heart_rate": 78, "temperature": Decimal("36.8"),
            "respiratory_rate": 16, "spo2": 97, "weight": Decimal("70.0")} | changes


def medication(text: str) -> dict:
    return {"medication": text[:200], "indication": "stroke, \"secondary\"\nprevention",
            "start_date": dt.date(2020, 1, 2), "dose": Decimal("12.50"), "route": "oral",
            "ongoing": True}


@pytest.fixture
def trial(site, nurse):
    """Subjects at a site in Shanghai and one in St John's (UTC-03:30), with forms created,
    edited with awkward reasons, a query with long text and its answer, and one deleted
    record; returns the time between the first and the second round of edits."""
    odd = SiteFactory(code="NL03", name="St John's", time_zone="America/St_Johns")
    odd_nurse = UserFactory(username="nurse3", role=Role.SITE_STAFF, sites=[odd])
    monitor = UserFactory(username="monitor", role=Role.DATA_MANAGER, first_name="Zoë",
                          last_name='O\'Brien, "Jr"')
    cut = None
    for place, user in ((site, nurse), (odd, odd_nurse)):
        randomization_list(place, rows_per_stratum=4)
        for _ in range(2):
            subject = randomized_subject(site=place, user=user)
            visit = subject.visits.get(code="D2")
            crf = save(VitalSigns, subject, user, vitals(), visit=visit)
            services.crf_save(crf=crf, values=vitals(heart_rate=80), user=user,
                              expected_version=crf.version, complete=True, reason=AWKWARD)
            med = save(ConcomitantMedication, subject, user, medication(AWKWARD))
            query = queries.query_raise(target=med, field_name="medication", text=LONG,
                                        user=monitor)
            queries.query_answer(query=query, text=AWKWARD, user=user)
            if cut is None:
                cut = timezone.now()
            with audit_source(Source.API):  # the correction came by the API
                services.crf_save(crf=med, values=medication("Aspirin, 100 mg"), user=user,
                                  expected_version=med.version, complete=True,
                                  reason=LONG[:1000])
            # No service deletes a form; the trail still shows a deletion its history holds.
            with system_writes():  # test data written directly
                ConcomitantMedication.objects.get(pk=med.pk).delete()
    return cut


def csv_files(user, tmp_path, name, profile, as_of=None) -> dict[str, bytes]:
    request = package.ExportRequest(user, ("csv",), profile, as_of)
    result = package.build(request, tmp_path / name)
    with zipfile.ZipFile(result.path) as archive:
        return {n: archive.read(n) for n in archive.namelist() if n.startswith("csv/")}


CASES = [
    (Role.DATA_MANAGER, Profile.BLINDED, False),
    (Role.DATA_MANAGER, Profile.DEIDENTIFIED, False),
    (Role.UNBLINDED_STATISTICIAN, Profile.UNBLINDED, False),
    (Role.DATA_MANAGER, Profile.BLINDED, True),
]


@on_postgresql
@pytest.mark.parametrize(("role", "profile", "as_of"), CASES,
                         ids=["blinded", "deidentified", "unblinded", "as-of"])
def test_postgresql_writes_the_same_csv_bytes_as_python(trial, tmp_path, monkeypatch, role,
                                                       profile, as_of):
    user = UserFactory(username="exporter", role=role)
    cut = trial if as_of else None
    by_database = csv_files(user, tmp_path, "sql.zip", profile, cut)
    monkeypatch.setattr(sql, "available", lambda: False)
    by_python = csv_files(user, tmp_path, "python.zip", profile, cut)
    assert by_database.keys() == by_python.keys()
    trail = by_python["csv/audit_trail.csv"]
    assert trail.count(b"\r\n") > 20, "the trail has rows to compare"
    for name in by_python:
        assert by_database[name] == by_python[name], name


@on_postgresql
def test_the_trail_carries_awkward_text_and_odd_time_zones(trial, tmp_path):
    user = UserFactory(username="exporter", role=Role.DATA_MANAGER)
    trail = csv_files(user, tmp_path, "sql.zip", Profile.BLINDED)["csv/audit_trail.csv"]
    text = trail.decode("utf-8")
    assert AWKWARD.strip().replace('"', '""') in text
    assert "-03:30" in text and "+08:00" in text
    assert ",deleted," in text
    # How each change came in: the API's correction, the system's other writes.
    assert ",api,API\r\n" in text and ",system,System job\r\n" in text
