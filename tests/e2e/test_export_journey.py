"""A data manager starts a dataset export on the exports page, sees it done and downloads the
zip: manifest, CSV files, nothing that unblinds (issue 10). The export runs as a Celery task
queued after the commit; here the task runs in-process."""

import csv
import datetime as dt
import hashlib
import io
import json
import zipfile
from decimal import Decimal

import pytest
from django.utils import timezone

from edc import protocol
from edc.roles import Role
from forms.entry import services
from forms.models import VitalSigns
from tests.e2e.steps import log_in
from tests.eligible import save
from tests.factories import SiteFactory, UserFactory, randomized_subject

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def eager():
    """Tasks run in the web server's thread (CI sets REDIS_URL, and no worker listens)."""
    from edc.celery import app

    before = app.conf.task_always_eager
    app.conf.task_always_eager = True
    yield
    app.conf.task_always_eager = before


@pytest.fixture
def export_root(settings, tmp_path):
    settings.EXPORT_ROOT = tmp_path / "exports"
    return settings.EXPORT_ROOT


def test_data_manager_exports_and_downloads_the_zip(page, watch, eager, export_root,
                                                    tmp_path):
    site = SiteFactory(code="SZ01", name="Shenzhen", time_zone="Asia/Shanghai")
    nurse = UserFactory(username="nurse", role=Role.SITE_STAFF, sites=[site])
    UserFactory(username="dm", role=Role.DATA_MANAGER, first_name="Zhao", last_name="Lei")
    subjects = [randomized_subject(site=site, user=nurse) for _ in range(2)]
    d1 = services.visit_record(visit=subjects[0].visits.get(code="D1"),
                               actual_date=subjects[0].day1, user=nurse)
    save(VitalSigns, subjects[0], nurse, {
        "measured_at": timezone.now() - dt.timedelta(minutes=30), "systolic_bp": 190,
        "diastolic_bp": 85, "heart_rate": 78, "temperature": Decimal("36.8"),
        "respiratory_rate": 16, "spo2": 97, "weight": Decimal("70.5")}, visit=d1)

    log_in(page, "dm")
    page.get_by_role("link", name="Exports").click()
    page.get_by_role("heading", name="Dataset exports").wait_for()
    assert page.get_by_label("CSV").is_checked()
    page.get_by_role("button", name="Start the export").click()
    link = page.get_by_role("link", name="Download the zip")
    link.wait_for()
    assert page.get_by_role("heading", name="Done").is_visible()
    sha256 = page.locator("code").inner_text()
    with page.expect_download() as info:
        link.click()
    download = info.value
    path = tmp_path / download.suggested_filename
    download.save_as(path)

    assert download.suggested_filename.endswith(".zip")
    assert hashlib.sha256(path.read_bytes()).hexdigest() == sha256
    with zipfile.ZipFile(path) as archive:
        assert archive.testzip() is None
        names = archive.namelist()
        assert {"manifest.json", "csv/subjects.csv", "csv/vital_signs.csv"} <= set(names)
        manifest = json.loads(archive.read("manifest.json"))
        rows = list(csv.DictReader(io.StringIO(archive.read("csv/subjects.csv")
                                               .decode("utf-8-sig"))))
        text = " ".join(archive.read(name).decode("utf-8", "replace") for name in names)
    assert {f["path"] for f in manifest["files"]} >= {"csv/subjects.csv"}
    assert len(rows) == 2
    assert [label for label in (*(str(a.label) for a in protocol.ARMS), protocol.PLACEBO,
                                protocol.ACTIVE) if label in text] == []

    page.get_by_role("link", name="All your exports").click()
    assert page.locator("tbody tr").count() == 1
    assert watch.arm_leaks() == {}
    assert watch.structure_problems() == {}
    assert len(watch.seen_by("Zhao Lei")) >= 4
