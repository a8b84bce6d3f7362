"""The audit trail viewer (issue 6, item 5): per field old → new, who, when and why; filters;
CSV export; site scoping; and the blind (no arm, no randomization rows for blinded users)."""

import csv
import datetime as dt
import io

import pytest
from django.urls import reverse
from django.utils import timezone

from edc import protocol
from edc.roles import Role
from edc.sources import Source, audit_source
from forms.entry import services
from forms.models import MRS, NIHSS
from forms.quality import queries
from forms.review import audit, audit_sources
from tests.eligible import NIHSS_12, enter_screening_data, save
from tests.factories import UserFactory, randomized_subject, screened_subject

ARM_TEXT = [str(arm.label) for arm in protocol.ARMS] + ["placebo", "Placebo"]
URL = reverse("forms:audit_trail")


def change_nihss(crf, user, values, reason):
    return services.crf_save(crf=crf, values={**NIHSS_12, "assessed_at": crf.assessed_at,
                                              **values},
                             user=user, expected_version=crf.version, complete=True,
                             reason=reason)


@pytest.fixture
def trial(site, nurse):
    """A randomized subject whose screening NIHSS was corrected with a reason."""
    subject = randomized_subject(site=site, user=nurse)
    visit = subject.visits.get(code=protocol.SCREENING_VISIT.code)
    nihss = save(NIHSS, subject, nurse, {"assessed_at": timezone.now() - dt.timedelta(hours=2),
                                         **NIHSS_12}, visit=visit)
    nihss = change_nihss(nihss, nurse, {"loc": "1"}, "Transcription error: source says 1")
    return subject


def user_with(role, *sites, **kwargs):
    return UserFactory(role=role, sites=list(sites), **kwargs)


def csv_rows(response) -> list[dict[str, str]]:
    text = response.content.decode("utf-8")
    assert text.startswith("\ufeff")
    return list(csv.DictReader(io.StringIO(text[1:])))


def test_a_change_with_a_reason_is_one_row_old_to_new_with_who_when_why(
    client, site, nurse, trial
):
    investigator = user_with(Role.INVESTIGATOR, site)
    before = timezone.now()
    rows = audit.audit_rows(user=investigator, subject=trial, crf_code="nihss", field="loc")
    changed = [row for row in rows if row.action == audit_sources.CHANGED]
    assert len(changed) == 1
    row = changed[0]
    assert (row.old_value, row.new_value) == (
        "0 — Alert; keenly responsive", "1 — Not alert; arousable by minor stimulation")
    assert row.who == nurse.printed_name
    assert row.reason == "Transcription error: source says 1"
    assert row.model == "NIHSS"
    assert row.field == "loc" and row.field_label == "1a. Level of consciousness"
    assert trial.subject_id in row.record and "Screening" in row.record
    assert row.when.tzinfo == dt.UTC and before - dt.timedelta(minutes=5) < row.when <= before
    # The creation is one row per item entered; the derived total changed in the same save.
    created = [r for r in audit.audit_rows(user=investigator, subject=trial, crf_code="nihss")
               if r.action == audit_sources.CREATED]
    assert {r.field for r in created} >= {"assessed_at", "loc", "total"}
    total = audit.audit_rows(user=investigator, subject=trial, crf_code="nihss", field="total")
    assert [(r.old_value, r.new_value) for r in total if r.action == audit_sources.CHANGED] == [
        ("12", "13")]

    client.force_login(investigator)
    page = client.get(URL, {"subject": trial.screening_number}).content.decode()
    assert "Transcription error: source says 1" in page
    assert "1 — Not alert; arousable by minor stimulation" in page
    local = row.when.astimezone(site.zone).strftime("%Y-%m-%d %H:%M:%S +0800")
    assert local in page


def test_filters_by_subject_form_field_user_and_date(client, site, nurse, trial):
    other = screened_subject(site=site, user=nurse)
    second_nurse = user_with(Role.SITE_STAFF, site, username="nurse2")
    visit = other.visits.get(code=protocol.SCREENING_VISIT.code)
    save(MRS, other, second_nurse, {"assessed_on": timezone.localdate(), "score": 2},
         visit=visit)
    client.force_login(user_with(Role.MONITOR, site))

    def shown(**params) -> str:
        """The page from its table on (the filters list every form)."""
        response = client.get(URL, params)
        assert response.status_code == 200
        return response.content.decode().split('<table class="audit">')[1]

    everything = shown()
    assert "Transcription error" in everything and "Modified Rankin Scale" in everything
    by_subject = shown(subject=other.screening_number)
    assert "Modified Rankin Scale" in by_subject and "Transcription error" not in by_subject
    assert trial.screening_number not in by_subject
    by_id = shown(subject=trial.subject_id)
    assert "Transcription error" in by_id and "Modified Rankin Scale" not in by_id
    by_form = shown(form="mrs")
    assert "Modified Rankin Scale" in by_form and "NIHSS" not in by_form
    by_field = shown(field="loc")
    assert "1a. Level of consciousness" in by_field and "NIHSS total" not in by_field
    by_user = shown(user="nurse2")
    assert "Modified Rankin Scale" in by_user and "Transcription error" not in by_user
    assert "No user nobody" in client.get(URL, {"user": "nobody"}).content.decode()
    today = timezone.localdate().isoformat()
    tomorrow = (timezone.localdate() + dt.timedelta(days=1)).isoformat()
    assert "Transcription error" in shown(date_from=today, date_to=today)
    assert "No changes match" in shown(date_from=tomorrow)


def test_csv_export_has_the_filtered_rows_in_utc(client, site, nurse, trial):
    client.force_login(user_with(Role.DATA_MANAGER))
    response = client.get(URL, {"subject": trial.screening_number, "field": "loc",
                                "format": "csv"})
    assert response.status_code == 200
    assert response["Content-Type"] == "text/csv; charset=utf-8"
    assert f"audit-trail-{trial.screening_number}.csv" in response["Content-Disposition"]
    assert response.content.decode("utf-8").splitlines()[0] == (
        "\ufefftime_utc,user,action,model,record,field,old_value,new_value,reason,channel")
    rows = csv_rows(response)
    assert [(r["action"], r["old_value"], r["new_value"], r["reason"]) for r in rows] == [
        ("changed", "0 — Alert; keenly responsive",
         "1 — Not alert; arousable by minor stimulation", "Transcription error: source says 1"),
        ("created", "", "0 — Alert; keenly responsive", ""),
    ]
    assert {r["field"] for r in rows} == {"1a. Level of consciousness (loc)"}
    assert {r["user"] for r in rows} == {nurse.printed_name}
    when = dt.datetime.strptime(rows[0]["time_utc"], "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=dt.UTC)
    assert abs(timezone.now() - when) < dt.timedelta(minutes=5)


def test_each_change_shows_the_channel_it_came_in_by(client, site, nurse, trial):
    """Checklist ER-07: the trail says whether a change came from a page, the API, a file
    import or a system job (the fixture's changes were made by code: system jobs)."""
    crf = NIHSS.objects.get(subject=trial)
    with audit_source(Source.API):
        change_nihss(crf, nurse, {"loc": "2"}, "Loaded by the nightly script")
    client.force_login(user_with(Role.DATA_MANAGER))
    filters = {"subject": trial.screening_number, "field": "loc"}
    page = client.get(URL, filters).content.decode()
    assert "<td>API</td>" in page and "<td>System job</td>" in page
    rows = csv_rows(client.get(URL, filters | {"format": "csv"}))
    assert [(r["reason"], r["channel"]) for r in rows] == [
        ("Loaded by the nightly script", "api"),
        ("Transcription error: source says 1", "system"), ("", "system")]
    client.post(reverse("language_switch"), {"language": "zh-hans", "next": "/"})
    assert "<td>系统作业</td>" in client.get(URL, filters).content.decode()


def test_chinese_text_survives_the_export(client, site, nurse, trial):
    crf = NIHSS.objects.get(subject=trial)
    change_nihss(crf, nurse, {"loc": "2"}, "源文件核对后更正")
    client.force_login(user_with(Role.INVESTIGATOR, site))
    rows = csv_rows(client.get(URL, {"subject": trial.screening_number, "format": "csv"}))
    assert "源文件核对后更正" in {r["reason"] for r in rows}


def test_a_monitor_of_another_site_sees_nothing_of_this_site(client, site, other_site, trial):
    client.force_login(user_with(Role.MONITOR, other_site))
    assert audit.audit_rows(user=user_with(Role.MONITOR, other_site)) == []
    page = client.get(URL).content.decode()
    assert "No changes match" in page and trial.screening_number not in page
    assert f"No subject {trial.screening_number} at your sites" in client.get(
        URL, {"subject": trial.screening_number}).content.decode()
    assert csv_rows(client.get(URL, {"format": "csv"})) == []


@pytest.mark.parametrize("role", [Role.SITE_STAFF, Role.UNBLINDED_PHARMACIST])
def test_roles_without_the_audit_trail_get_403(client, site, trial, role):
    user = user_with(role, site)
    client.force_login(user)
    assert client.get(URL).status_code == 403
    assert client.get(URL, {"format": "csv"}).status_code == 403
    casebook = client.get(reverse("forms:casebook", args=[trial.pk])).content.decode()
    assert URL not in casebook


@pytest.mark.parametrize("role", [Role.INVESTIGATOR, Role.MONITOR, Role.DATA_MANAGER])
def test_a_blinded_user_never_sees_the_arm_or_the_randomization_list(client, site, trial, role):
    user = user_with(role, site)
    client.force_login(user)
    rows = audit.audit_rows(user=user)
    assert rows, "the trail is not empty"
    assert "kit" in {row.source for row in rows}
    assert "randomization" not in {row.source for row in rows}
    assert audit.audit_rows(user=user, crf_code="randomization") == []
    responses = [client.get(URL), client.get(URL, {"subject": trial.screening_number}),
                 client.get(URL, {"form": "randomization"}), client.get(URL, {"field": "arm"}),
                 client.get(URL, {"format": "csv"})]
    for response in responses:
        assert response.status_code == 200
        text = response.content.decode()
        assert [arm for arm in ARM_TEXT if arm in text] == []
        assert "Randomization list row" not in text
        assert "randomization list row" not in text
    casebook = client.get(reverse("forms:casebook", args=[trial.pk])).content.decode()
    assert f"{URL}?subject={trial.screening_number}" in casebook
    home = client.get("/").content.decode()
    assert f'href="{URL}"' in home


def test_the_unblinded_statistician_sees_the_randomization_rows(client, site, trial):
    statistician = user_with(Role.UNBLINDED_STATISTICIAN)
    rows = audit.audit_rows(user=statistician, subject=trial)
    assert rows and {row.source for row in rows} == {"randomization"}
    allocation = [row for row in rows if row.field == "subject"]
    assert [(r.action, r.old_value, r.new_value) for r in allocation] == [
        ("changed", "", trial.label)]
    arm_rows = [row for row in rows if row.field == "arm"]
    assert len(arm_rows) == 1
    client.force_login(statistician)
    page = client.get(URL, {"subject": trial.subject_id}).content.decode()
    assert arm_rows[0].new_value in page
    assert any(str(arm.label) in page for arm in protocol.ARMS)


def test_identity_rows_are_shown_to_the_investigator_and_hidden_from_a_monitor(
    client, site, trial
):
    investigator = user_with(Role.INVESTIGATOR, site)
    identity = [r for r in audit.audit_rows(user=investigator, subject=trial)
                if r.source == "identity"]
    assert {r.field for r in identity} >= {"full_name", "birth_date"}
    assert "Wang Fang" in {r.new_value for r in identity}

    monitor = user_with(Role.MONITOR, site)
    assert "identity" not in {r.source for r in audit.audit_rows(user=monitor)}
    assert audit.audit_rows(user=monitor, crf_code="identity") == []
    client.force_login(monitor)
    for response in (client.get(URL), client.get(URL, {"format": "csv"})):
        text = response.content.decode()
        assert "Wang Fang" not in text and "H123456" not in text and "13800000000" not in text


def test_query_rows_are_in_the_trail(site, nurse, trial):
    monitor = user_with(Role.MONITOR, site)
    crf = NIHSS.objects.get(subject=trial)
    query = queries.query_raise(target=crf, field_name="loc", text="Please check the source.",
                                user=monitor)
    queries.query_answer(query=query, text="Corrected.", user=nurse)
    rows = audit.audit_rows(user=monitor, subject=trial, crf_code="query")
    status = [(r.old_value, r.new_value, r.reason) for r in rows
              if r.field == "status" and r.action == audit_sources.CHANGED]
    assert status == [("Open", "Answered", "Answered")]
    texts = {r.new_value for r in rows if r.field == "text"}
    assert {"Please check the source.", "Corrected."} <= texts
    assert {r.record for r in rows} == {f"{trial.label} · query #{query.pk} on nihss.loc"}
    # The trail of one record: the query and its messages.
    one = audit.audit_rows(user=monitor, crf_code="query", record=query.pk)
    assert one and {r.record_pk for r in one if r.model == "Query"} == {query.pk}


def test_the_subject_page_reads_a_bounded_number_of_queries(
    client, site, nurse, trial, django_assert_max_num_queries
):
    """One query per history table, whatever the number of forms and records."""
    client.force_login(user_with(Role.INVESTIGATOR, site))
    params = {"subject": trial.screening_number}
    with django_assert_max_num_queries(40):
        assert client.get(URL, params).status_code == 200

    busy = screened_subject(site=site, user=nurse)
    enter_screening_data(busy, nurse)
    monitor = user_with(Role.MONITOR, site)
    for crf in (NIHSS.objects.get(subject=busy), MRS.objects.get(subject=busy)):
        query = queries.query_raise(target=crf, field_name=crf.required_items[0],
                                    text="Check.", user=monitor)
        queries.query_answer(query=query, text="Checked.", user=nurse)
    params = {"subject": busy.screening_number}
    with django_assert_max_num_queries(40):
        response = client.get(URL, params)
    assert response.status_code == 200
    assert "Laboratory panel" in response.content.decode()


def test_the_administrator_sees_no_clinical_audit_trail(client, site, trial):
    client.force_login(user_with(Role.ADMINISTRATOR, site))
    assert client.get(URL).status_code == 403
