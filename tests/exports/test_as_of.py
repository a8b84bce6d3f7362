"""The "as of" time of an export lies between the trial's start and now: anything else is
refused with a message on the page, in the service and in the command, and writes no export
row; the exports page renders whatever rows exist (issue 14, item 12)."""

import datetime as dt
import io

import pytest
from django.core.exceptions import ValidationError
from django.core.management import CommandError, call_command
from django.db import connection
from django.urls import reverse
from django.utils import timezone

from edc import bounds
from edc.models import ExportRun
from edc.roles import Role
from exports.dictionary import Profile
from exports.tasks import export_start
from tests.factories import UserFactory


@pytest.fixture
def data_manager(site):
    return UserFactory(username="dm", role=Role.DATA_MANAGER)


OUT_OF_SPAN = ["0001-01-01T00:00", "1999-12-31T23:59", "2024-12-31T23:59",
               "9999-12-31T23:59"]


@pytest.mark.parametrize("as_of", OUT_OF_SPAN)
def test_the_page_refuses_an_as_of_outside_the_trial_and_writes_nothing(
        client, data_manager, as_of):
    client.force_login(data_manager)
    response = client.post(reverse("exports:exports"),
                           {"formats": ["csv"], "profile": "blinded", "as_of": as_of})
    assert response.status_code == 400
    body = response.content.decode()
    assert ("before the trial began" in body) or ("The time lies in the future." in body)
    assert not ExportRun.objects.exists()
    assert client.get(reverse("exports:exports")).status_code == 200


@pytest.mark.parametrize("as_of", [dt.datetime(1, 1, 1, tzinfo=dt.UTC),
                                   dt.datetime(2024, 12, 31, 23, 59, tzinfo=dt.UTC),
                                   timezone.now() + dt.timedelta(hours=1)])
def test_the_service_refuses_an_as_of_outside_the_trial(data_manager, as_of):
    with pytest.raises(ValidationError):
        export_start(user=data_manager, formats=["csv"], profile=Profile.BLINDED, as_of=as_of)
    assert not ExportRun.objects.exists()


def test_an_as_of_inside_the_trial_is_accepted(data_manager, django_capture_on_commit_callbacks):
    start = dt.datetime.combine(bounds.TRIAL_START, dt.time(12), tzinfo=dt.UTC)
    with django_capture_on_commit_callbacks(execute=False):
        run = export_start(user=data_manager, formats=["csv"], profile=Profile.BLINDED,
                           as_of=start)
    assert run.as_of == start


@pytest.mark.parametrize("as_of", ["0001-01-01", "0001-01-01T00:00Z", "1900-01-01",
                                   "9999-12-31T23:59Z", "2024-12-31"])
def test_the_command_refuses_an_as_of_outside_the_trial(data_manager, tmp_path, as_of):
    with pytest.raises(CommandError, match="--as-of"):
        call_command("export", user="dm", format="csv", as_of=as_of,
                     output=str(tmp_path / "x.zip"), verbosity=0, stdout=io.StringIO(),
                     stderr=io.StringIO())
    assert not (tmp_path / "x.zip").exists()


def test_the_exports_page_renders_with_an_odd_stored_row(client, data_manager):
    """A row written before this check existed (as of year 1 in UTC+8, which PostgreSQL keeps
    as a year-0 time Python cannot hold) must not take the page down."""
    run = ExportRun.objects.create(requested_by=data_manager, formats=["nonsense"],
                                   profile="blinded")
    with connection.cursor() as cursor:
        cursor.execute("UPDATE edc_exportrun SET as_of = %s WHERE id = %s",
                       ["0001-01-01 00:00:00+08:00", run.pk])
    client.force_login(data_manager)
    response = client.get(reverse("exports:exports"))
    assert response.status_code == 200
    assert "out of range" in response.content.decode()
    assert client.get(reverse("exports:detail", args=[run.pk])).status_code == 200
