"""Data-entry forms as the browser gets and sends them back (forms/entry/crf_forms.py)."""

import re

import pytest
from django.urls import reverse
from django.utils import timezone

from forms.models import ConcomitantMedication
from tests.eligible import save
from tests.factories import randomized_subject


@pytest.fixture
def subject(site, nurse):
    return randomized_subject(site=site, user=nurse)


def checkbox(html: str, name: str) -> tuple[str, bool]:
    """(what the box sends when ticked, whether it is shown ticked), as a browser reads it."""
    tag = re.search(rf'<input type="checkbox" name="{name}"[^>]*>', html).group(0)
    value = re.search(r'value="([^"]*)"', tag)
    return (value.group(1) if value else "on"), re.search(r"\schecked\b", tag) is not None


def medication(subject, **values) -> dict:
    today = timezone.localdate(timezone.now(), subject.site.zone)
    return {"medication": "Paracetamol", "indication": "Headache",
            "start_date": today.isoformat()} | values


@pytest.mark.parametrize(("crf_code", "name"), [
    ("concomitant_medication", "ongoing"),
    ("adverse_event", "serious_hospitalization"),
])
def test_a_new_form_shows_its_boxes_unticked(client, subject, nurse, crf_code, name):
    client.force_login(nurse)
    html = client.get(reverse("forms:log_new", args=[subject.pk, crf_code])).content.decode()
    assert checkbox(html, name)[1] is False


def test_ticking_a_box_saves_yes(client, subject, nurse):
    """The load test's nurses ticked "ongoing" and found it saved as no: the box was shown
    ticked with value="False"."""
    url = reverse("forms:log_new", args=[subject.pk, "concomitant_medication"])
    client.force_login(nurse)
    sent_when_ticked, _ticked = checkbox(client.get(url).content.decode(), "ongoing")
    response = client.post(url, medication(subject, ongoing=sent_when_ticked)
                           | {"version": 0, "action": "complete"})
    assert response.status_code == 302
    assert ConcomitantMedication.objects.get().ongoing is True


@pytest.mark.parametrize("ongoing", [True, False])
def test_a_saved_box_shows_as_saved_and_a_resave_keeps_it(client, subject, nurse, ongoing):
    values = medication(subject, ongoing=ongoing)
    values["start_date"] = timezone.localdate(timezone.now(), subject.site.zone)
    crf = save(ConcomitantMedication, subject, nurse, values)
    url = reverse("forms:log_edit", args=[subject.pk, "concomitant_medication", crf.pk])
    client.force_login(nurse)
    sent_when_ticked, ticked = checkbox(client.get(url).content.decode(), "ongoing")
    assert ticked is ongoing
    posted = medication(subject) | {"version": crf.version, "action": "complete"}
    if ticked:
        posted["ongoing"] = sent_when_ticked
    assert client.post(url, posted).status_code == 302
    crf.refresh_from_db()
    assert crf.ongoing is ongoing
