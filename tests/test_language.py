"""Each person reads the EDC in their own language (issue 17): the language on the account,
the browser's as the default, the switcher in the header and on the login page; texts the
system writes (edit-check questions, system reasons, reminders, mails) stored language-neutral
and shown in each reader's language, not in the language of whoever triggered them."""

import datetime as dt
from decimal import Decimal

import pytest
from django.conf import settings
from django.core import mail
from django.urls import reverse
from django.utils import translation

from edc.i18n import Text, neutral, shown
from edc.models import Notification
from edc.notifications import Item, Outcome, notify
from edc.roles import Role
from edc.services import user_language_set
from forms.models import VitalSigns
from forms.models.queries import Query
from forms.quality.checks import CHECKS_BY_CODE
from tests.eligible import save
from tests.factories import UserFactory, randomized_subject

ZH = "zh-hans"


def zh(message) -> str:
    """``message`` (a message id, a lazy text or an ``edc.i18n.Text``) in Chinese."""
    with translation.override(ZH):
        return translation.gettext(message) if isinstance(message, str) else str(message)


def html_lang(response) -> str:
    text = response.content.decode()
    start = text.index('<html lang="') + len('<html lang="')
    return text[start:text.index('"', start)]


# --- Choosing the language ---------------------------------------------------------------------


def test_the_browser_language_is_the_default_before_login(client, db):
    page = client.get(reverse("login"), HTTP_ACCEPT_LANGUAGE="zh-CN,zh;q=0.9,en;q=0.5")
    assert html_lang(page) == ZH
    assert zh("Log in") in page.content.decode()
    assert zh("Log in") != "Log in"
    assert html_lang(client.get(reverse("login"), HTTP_ACCEPT_LANGUAGE="en-GB")) == "en"


def test_the_login_page_offers_the_switcher_and_remembers_the_choice(client, db):
    page = client.get(reverse("login"), HTTP_ACCEPT_LANGUAGE="en")
    assert 'name="language" value="zh-hans"' in page.content.decode()
    response = client.post(reverse("language_switch"),
                           {"language": ZH, "next": reverse("login")},
                           HTTP_ACCEPT_LANGUAGE="en")
    assert response.status_code == 302 and response.url == reverse("login")
    assert response.cookies[settings.LANGUAGE_COOKIE_NAME].value == ZH
    assert html_lang(client.get(reverse("login"), HTTP_ACCEPT_LANGUAGE="en")) == ZH


def test_the_account_language_wins_over_the_browser(client, nurse):
    user_language_set(user=nurse, language=ZH)
    client.force_login(nurse)
    page = client.get(reverse("home"), HTTP_ACCEPT_LANGUAGE="en-US")
    assert html_lang(page) == ZH
    assert page["Content-Language"] == ZH
    assert zh("Screening log") in page.content.decode()


def test_without_an_account_language_the_browser_decides(client, nurse):
    client.force_login(nurse)
    assert html_lang(client.get(reverse("home"), HTTP_ACCEPT_LANGUAGE="zh-Hans")) == ZH
    assert html_lang(client.get(reverse("home"), HTTP_ACCEPT_LANGUAGE="en")) == "en"


def test_the_header_switcher_keeps_the_choice_on_the_account(client, nurse):
    client.force_login(nurse)
    response = client.post(reverse("language_switch"),
                           {"language": ZH, "next": reverse("forms:matrix")})
    assert response.status_code == 302 and response.url == reverse("forms:matrix")
    nurse.refresh_from_db()
    assert nurse.language == ZH
    # Kept in the account's history, by the person themself.
    last = nurse.history.order_by("-history_id").first()
    assert last.language == ZH and last.history_user_id == nurse.pk
    # Another browser, another day: still Chinese.
    client.cookies.clear()
    client.force_login(nurse)
    assert html_lang(client.get(reverse("home"), HTTP_ACCEPT_LANGUAGE="en")) == ZH


def test_an_unknown_language_is_refused_and_nothing_changes(client, nurse):
    client.force_login(nurse)
    response = client.post(reverse("language_switch"), {"language": "xx", "next": "/"})
    assert response.status_code == 400
    nurse.refresh_from_db()
    assert nurse.language == ""
    response = client.post(reverse("account"), {"language": "de"})
    assert response.status_code == 400
    nurse.refresh_from_db()
    assert nurse.language == ""


def test_the_settings_page_sets_and_clears_the_language(client, nurse):
    client.force_login(nurse)
    page = client.get(reverse("account"))
    assert page.status_code == 200 and 'name="language"' in page.content.decode()
    client.post(reverse("account"), {"language": ZH})
    nurse.refresh_from_db()
    assert nurse.language == ZH
    assert html_lang(client.get(reverse("account"), HTTP_ACCEPT_LANGUAGE="en")) == ZH
    client.post(reverse("account"), {"language": ""})
    nurse.refresh_from_db()
    assert nurse.language == ""
    assert html_lang(client.get(reverse("account"), HTTP_ACCEPT_LANGUAGE="en")) == "en"


def test_times_stay_in_the_site_zone_whatever_the_language(client, site, nurse):
    user_language_set(user=nurse, language=ZH)
    client.force_login(nurse)
    page = client.get(reverse("home")).content.decode()
    assert "Asia/Shanghai" in page


def test_dates_and_numbers_follow_the_language(nurse):
    from django.utils import formats

    day = dt.date(2026, 3, 2)
    with translation.override(ZH):
        assert formats.date_format(day) == "2026年3月2日"
        assert formats.localize(Decimal("36.8")) == "36.8"
        # A date typed the ISO way is still read in Chinese.
        assert "%Y-%m-%d" in formats.get_format("DATE_INPUT_FORMATS")
    with translation.override("en"):
        assert formats.date_format(day) == "March 2, 2026"


# --- Texts the system writes -------------------------------------------------------------------


@pytest.fixture
def subject(site, nurse):
    return randomized_subject(site=site, user=nurse)


def test_an_edit_check_query_reads_in_each_readers_language(client, site, subject):
    nurse_zh = UserFactory(username="hushi", role=Role.SITE_STAFF, sites=[site], language=ZH)
    monitor = UserFactory(username="monitor", role=Role.MONITOR, sites=[site], language="en")
    # The Chinese-speaking nurse's save raises the query ...
    with translation.override(ZH):
        save(VitalSigns, subject, nurse_zh,
             {"measured_at": dt.datetime.now(dt.UTC) - dt.timedelta(minutes=5),
              "systolic_bp": 190, "diastolic_bp": 70, "heart_rate": 80,
              "temperature": Decimal("36.8"), "respiratory_rate": 16, "spo2": 97,
              "weight": Decimal("70.0")},
             visit=subject.visits.get(code="D2"))
    [query] = Query.objects.filter(check_code="VS-001")
    english = neutral(CHECKS_BY_CODE["VS-001"].message)
    chinese = zh(CHECKS_BY_CODE["VS-001"].message)
    assert chinese != english
    # ... stored language-neutral, as the check's message id ...
    assert query.text == english and query.messages.get().text == english
    # ... and each reader reads it in their own language.
    client.force_login(monitor)
    assert english in client.get(reverse("forms:query_list")).content.decode()
    client.force_login(nurse_zh)
    page = client.get(reverse("forms:query_list")).content.decode()
    assert chinese in page and english not in page
    # The thread on the form reads the same.
    crf = VitalSigns.objects.get(subject=subject)
    form_page = client.get(reverse("forms:visit_crf", args=[subject.pk, crf.visit_id,
                                                             "vital_signs"])).content.decode()
    assert chinese in form_page and english not in form_page


def test_a_question_a_person_typed_is_never_translated(db):
    query = Query(text="Open", check_code="")
    with translation.override(ZH):
        assert query.shown_text == "Open"
        # A system text no longer in the catalogue (a reworded check) is shown as stored.
        assert shown("A message the catalogue never had.") == "A message the catalogue never had."
        assert shown("") == ""


def test_system_reasons_in_the_audit_trail_read_in_the_readers_language(db):
    from forms.models.queries import MessageKind

    with translation.override(ZH):
        stored = neutral(MessageKind.RAISED.label)
    assert stored == "Raised"
    with translation.override(ZH):
        assert shown(stored) == zh(MessageKind.RAISED.label) != "Raised"


def test_reminders_reach_each_recipient_in_their_language(site):
    zh_nurse = UserFactory(username="hushi", role=Role.SITE_STAFF, sites=[site], language=ZH,
                           email="hushi@site.example")
    en_manager = UserFactory(username="dm", role=Role.DATA_MANAGER, language="",
                             email="dm@trial.example")
    title = Text("Open queries to answer: %(count)s", count=2)
    line = Text("%(site)s %(subject)s%(visit)s, %(where)s: %(what)s %(days)s days "
                "(since %(since)s)", site="SZ01", subject="SZ01-001", visit="",
                where="vital_signs.weight", what=Text("open for"), days=8, since="2026-03-02")
    # Triggered while a Chinese page was being served: the recipients' languages still decide.
    with translation.override(ZH):
        for user in (zh_nurse, en_manager):
            notify(outcome=Outcome(), items=[Item(kind="k", key=f"k:{user.pk}", line=line)],
                   user=user, title=title, link="/casebook/queries/")
    by_address = {m.to[0]: m for m in mail.outbox}
    english_title = "Open queries to answer: 2"
    assert by_address["dm@trial.example"].subject == english_title
    assert "open for 8 days" in by_address["dm@trial.example"].body
    chinese_title = zh(Text("Open queries to answer: %(count)s", count=2))
    assert chinese_title != english_title
    assert by_address["hushi@site.example"].subject == chinese_title
    assert zh(Text("open for")) in by_address["hushi@site.example"].body
    assert Notification.objects.get(user=zh_nurse).title == chinese_title
    assert Notification.objects.get(user=en_manager).title == english_title
