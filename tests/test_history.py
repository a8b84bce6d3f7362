"""The one audited save (edc.history, issue 16): every history row names its author and reason,
and one without an author fails loudly instead of entering the audit trail anonymously."""

import pytest
from django.core.exceptions import ValidationError

from edc.history import SYSTEM, AuthorMissing, audited_save, system_writes
from edc.models import Site


@pytest.mark.django_db
def test_a_history_row_without_an_author_fails_loudly(site):
    site.name = "Renamed behind the services' back"
    with pytest.raises(AuthorMissing, match="Site"):
        site.save()
    assert site.history.filter(name="Renamed behind the services' back").count() == 0


@pytest.mark.django_db
def test_the_audited_save_records_author_and_reason(site, nurse):
    site.name = "Shenzhen Second People's Hospital"
    audited_save(site, user=nurse, reason="  Name as on the ethics approval  ")
    row = site.history.first()
    assert (row.history_user, row.history_change_reason, row.name) == (
        nurse, "Name as on the ethics approval", "Shenzhen Second People's Hospital")


@pytest.mark.django_db
def test_the_system_names_itself_and_leaves_no_person(site):
    site.name = "Set by the system"
    audited_save(site, user=SYSTEM, reason="Seeded")
    with system_writes():
        Site.objects.create(code="SYS1", name="Seeded in a block")
    assert site.history.first().history_user is None
    assert Site.history.filter(code="SYS1").get().history_user is None


@pytest.mark.django_db
def test_a_refused_value_writes_nothing(site, nurse):
    before = site.history.count()
    site.time_zone = "Not/A_Zone"
    with pytest.raises(ValidationError):
        audited_save(site, user=nurse, reason="typo")
    assert site.history.count() == before


@pytest.mark.django_db
def test_a_reason_with_a_null_character_is_refused(site, nurse):
    site.name = "Renamed"
    with pytest.raises(ValidationError) as caught:
        audited_save(site, user=nurse, reason="bad\x00reason")
    assert "reason" in caught.value.message_dict


@pytest.mark.django_db
def test_the_history_manager_class_is_made_once_and_reads_each_rows_own_history(site, nurse):
    """simple-history makes a manager class on every read of ``Model.history`` (it reads it for
    every history row it writes); ours is made once (edc.sources.HistoryManagerOnce), and
    each manager still reads its own model's and instance's rows."""
    assert type(Site.history) is type(Site.history)
    assert type(site.history) is type(Site.history)
    other = Site(code="HM02", name="Another hospital", time_zone="Asia/Shanghai")
    audited_save(other, user=nurse, reason="Opened")
    site.name = "Renamed"
    audited_save(site, user=nurse, reason="Renamed")
    assert [row.name for row in other.history.all()] == ["Another hospital"]
    assert site.history.first().name == "Renamed"
    assert Site.history.filter(code="HM02").count() == 1
