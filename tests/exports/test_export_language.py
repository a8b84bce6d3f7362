"""Exports in a chosen language (issue 17): English by default whatever language the person
reads the pages in; Chinese labels, value labels and data dictionary when asked, on the page
or with ``export --language zh-hans``; SAS XPORT described in English (ASCII) always."""

import csv
import io
import json
import zipfile

import pytest
from django.core.management import call_command
from django.urls import reverse
from django.utils import translation

from edc.models import ExportRun, ExportStatus
from edc.roles import Role
from exports import package
from exports.dictionary import crf_dataset
from forms.models import VitalSigns
from forms.models.base import CRFStatus
from tests.exports.test_package import trial  # noqa: F401 (a fixture)
from tests.exports.xport import read_xport
from tests.factories import UserFactory

ZH = "zh-hans"


def zh(message) -> str:
    with translation.override(ZH):
        return str(message)


@pytest.fixture
def data_manager(site):
    return UserFactory(username="dm", role=Role.DATA_MANAGER)


def read_zip(path) -> dict[str, bytes]:
    with zipfile.ZipFile(path) as archive:
        return {name: archive.read(name) for name in archive.namelist()}


def csv_rows(files, name) -> list[dict]:
    return list(csv.DictReader(io.StringIO(files[name].decode("utf-8"))))


def dictionary_label(files, dataset, variable) -> str:
    for row in csv_rows(files, "dictionary/data_dictionary.csv"):
        if row["dataset"] == dataset and row["variable"] == variable:
            return row["label"]
    raise AssertionError(f"{dataset}.{variable} not in the dictionary")


SYSTOLIC = VitalSigns._meta.get_field("systolic_bp").verbose_name


def test_an_export_is_english_by_default_even_for_a_chinese_reader(trial, data_manager,  # noqa: F811
                                                                   tmp_path):
    data_manager.language = ZH
    with translation.override(ZH):  # as when the page of a Chinese reader runs it in-process
        result = package.build(package.ExportRequest(data_manager, ("csv",)),
                               tmp_path / "x.zip")
    files = read_zip(result.path)
    [row] = csv_rows(files, "csv/vital_signs.csv")
    assert row["form_status_label"] == "Complete"
    assert dictionary_label(files, "vital_signs", "systolic_bp") == str(SYSTOLIC)
    assert json.loads(files["manifest.json"])["parameters"]["language"] == "en"


def test_a_chinese_export_has_chinese_labels_value_labels_and_dictionary(
        trial, data_manager, tmp_path):  # noqa: F811
    result = package.build(package.ExportRequest(data_manager, ("csv", "xlsx", "sav", "xpt"),
                                                 language=ZH), tmp_path / "x.zip")
    files = read_zip(result.path)
    [row] = csv_rows(files, "csv/vital_signs.csv")
    # Codes stay codes; their labels are Chinese.
    assert row["form_status"] == "complete"
    assert row["form_status_label"] == zh(CRFStatus.COMPLETE.label) != "Complete"
    assert dictionary_label(files, "vital_signs", "systolic_bp") == zh(SYSTOLIC) != str(SYSTOLIC)
    html = files["dictionary/data_dictionary.html"].decode()
    assert zh(SYSTOLIC) in html
    assert json.loads(files["manifest.json"])["parameters"]["language"] == ZH
    # SAS XPORT stays ASCII, its labels the English ones.
    target = tmp_path / "vs.xpt"
    target.write_bytes(files[f"xpt/{crf_dataset('vital_signs').sas_name}.xpt"])
    _frame, meta, _pieces = read_xport(target)
    labels = list(meta.column_labels)
    assert all(label.isascii() for label in labels)
    assert str(SYSTOLIC)[:40] in labels


def test_the_exports_page_offers_the_language(client, trial, data_manager, settings,  # noqa: F811
                                              tmp_path, django_capture_on_commit_callbacks):
    from edc.celery import app

    settings.EXPORT_ROOT = tmp_path / "exports"
    eager = app.conf.task_always_eager
    app.conf.task_always_eager = True
    try:
        client.force_login(data_manager)
        page = client.get(reverse("exports:exports")).content.decode()
        assert 'name="language" value="zh-hans"' in page
        with django_capture_on_commit_callbacks(execute=True):
            response = client.post(reverse("exports:exports"), {
                "formats": ["csv"], "profile": "blinded", "language": ZH})
        assert response.status_code == 302
        run = ExportRun.objects.get()
        assert run.language == ZH and run.status == ExportStatus.DONE, run.error
        files = read_zip(package.export_path(run.pk))
        [row] = csv_rows(files, "csv/vital_signs.csv")
        assert row["form_status_label"] == zh(CRFStatus.COMPLETE.label)
        # An unknown language is refused with a message, nothing queued.
        response = client.post(reverse("exports:exports"), {
            "formats": ["csv"], "profile": "blinded", "language": "xx"})
        assert response.status_code == 400 and ExportRun.objects.count() == 1
    finally:
        app.conf.task_always_eager = eager


def test_the_export_command_takes_a_language(trial, data_manager, tmp_path):  # noqa: F811
    out = tmp_path / "zh.zip"
    call_command("export", user="dm", format="csv", language=ZH, output=str(out),
                 stdout=io.StringIO(), stderr=io.StringIO())
    files = read_zip(out)
    assert dictionary_label(files, "vital_signs", "systolic_bp") == zh(SYSTOLIC)
    default = tmp_path / "en.zip"
    call_command("export", user="dm", format="csv", output=str(default),
                 stdout=io.StringIO(), stderr=io.StringIO())
    assert dictionary_label(read_zip(default), "vital_signs", "systolic_bp") == str(SYSTOLIC)
