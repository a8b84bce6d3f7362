"""The nurse's, the monitor's and the data manager's journeys in Simplified Chinese (issue 17),
on the seeded demo trial, in a browser whose language is Chinese: every page they open is
searched for English interface text left over. Allowed: codes (NIHSS, VS-003, SZ01), units
(mmHg, kg), identifiers (item codes such as heart_rate), numbers and dates, and proper names
taken from the data (site, person and trial names); what people typed into the trial (free
text of the synthetic trial, in English) is data, not interface, and is not looked at where it
is shown as data (table cells, query threads), only where the interface speaks."""

import re

import pytest
from django.conf import settings
from django.core.management import call_command
from django.utils import translation

from edc.history import system_writes
from edc.models import Notification, NotificationLog, Site, User
from forms.models import AdverseEvent
from forms.reminders import sae_notify_initial
from tests.factories import PASSWORD

pytestmark = pytest.mark.django_db(transaction=True)

ZH = "zh-hans"

# The interface's own words: headings, labels, buttons, table headers, navigation, hints,
# choices, captions, the page title and the accessible names and placeholders of controls.
INTERFACE_TEXT = """() => {
  const texts = [];
  const selectors = 'h1, h2, h3, h4, label, legend, button, th, nav a, .hint, option, '
    + 'caption, summary, dt, .lead, .messages li, .error, .field-error, .badge, footer, '
    + 'a.button, .muted';
  for (const el of document.querySelectorAll(selectors)) {
    if (!el.getClientRects().length && el.tagName !== 'OPTION') continue;
    texts.push([el.tagName.toLowerCase(), el.innerText || el.textContent || '']);
  }
  for (const el of document.querySelectorAll('[placeholder], [aria-label], [title]')) {
    for (const attr of ['placeholder', 'aria-label', 'title']) {
      const value = el.getAttribute(attr);
      if (value) texts.push([`@${attr}`, value]);
    }
  }
  texts.push(['title', document.title]);
  return texts;
}"""

# A code: no lower-case letter (NIHSS, VS-003, D_DIMER), or a digit in it (SZ01, v2, SpO2),
# or an identifier with an underscore (heart_rate); or a single letter (item 1a's "a").
CODE = re.compile(r"^(?:[A-Z0-9_]+(?:[-/.][A-Z0-9_]+)*|\w*\d\w*(?:[-/.]\w+)*"
                  r"|[a-z]+(?:_[a-z0-9]+)+|[a-z_]+\.[a-z0-9_]+|[A-Za-z])$")
UNITS = {"mmHg", "kg", "cm", "mg", "mL", "ml", "min", "bpm", "mmol", "µmol", "umol", "L", "dL",
         "g", "U", "IU", "h", "d", "ng", "pg", "m²", "kg/m²", "ms", "s", "°C", "x", "mL/min",
         "mRS", "eGFR", "SpO2", "hUC", "MSC", "Excel", "Stata", "XPORT", "v", "vs", "pH",
         "version", "hex"}
# Proper names of scales, dictionaries and products, kept in Latin letters in Chinese usage.
NAMES = {"Barthel", "Rankin", "MedDRA", "PAXgene", "SpO", "NIHSS", "CTCAE"}
# File formats, by their extensions.
FORMATS = {"zip", "csv", "xlsx", "xpt", "dta", "sav", "rds", "xml", "pdf", "html"}
WORD = re.compile(r"[A-Za-z][A-Za-z0-9_]*(?:[-/.'][A-Za-z0-9_]+)*")


def proper_names() -> set[str]:
    """Names the data bring: sites, people, the trial, the languages named in themselves,
    the time zones."""
    names = {"English", "Asia/Shanghai", "UTC"}
    for site in Site.objects.all():
        names |= set(WORD.findall(site.name)) | {site.code, site.time_zone}
    for user in User.objects.all():
        names |= {user.username, user.first_name, user.last_name}
    names |= set(WORD.findall(settings.TRIAL_NAME))
    # What people typed (adverse event terms, medicines, indications) is data, wherever the
    # interface lists it (a choice of events, a heading naming the record).
    from forms.models import AdverseEvent, ConcomitantMedication

    for text in [*AdverseEvent.objects.values_list("term", flat=True),
                 *ConcomitantMedication.objects.values_list("medication", "indication")]:
        for part in ([text] if isinstance(text, str) else text):
            names |= set(WORD.findall(part or ""))
    # Dataset and form codes, as the data dictionary names them.
    from forms.models import CRF_MODELS

    names |= set(CRF_MODELS) | {"subjects", "visits", "queries", "query_messages", "audit_trail"}
    return names | NAMES | FORMATS


def english_words(text: str, allowed: set[str]) -> list[str]:
    return [word for word in WORD.findall(text)
            if not (CODE.match(word) or word in UNITS or word in allowed)]


def leftovers(page, allowed: set[str]) -> list[str]:
    """"element: text" for each piece of interface text that holds English words."""
    found = []
    for tag, text in page.evaluate(INTERFACE_TEXT):
        words = english_words(text, allowed)
        if words:
            found.append(f"{tag}: {' '.join(text.split())[:120]} [{' '.join(words[:6])}]")
    return found


def zh(message: str) -> str:
    with translation.override(ZH):
        return translation.gettext(message)


def log_in(page, username: str) -> None:
    page.context.clear_cookies()
    page.goto(page.base_url + "/accounts/login/")
    page.locator("[name=username]").fill(username)
    page.locator("[name=password]").fill(PASSWORD)
    page.get_by_role("button", name=zh("Log in")).click()
    page.wait_for_url(page.base_url + "/")


class Walk:
    """The pages walked and the English each showed."""

    def __init__(self, page, allowed: set[str]):
        self.page, self.allowed = page, allowed
        self.found: dict[str, list[str]] = {}
        self.urls: list[str] = []

    def look(self, who: str) -> None:
        page = self.page
        self.urls.append(page.url)
        problems = leftovers(page, self.allowed)
        lang = page.evaluate("document.documentElement.lang")
        if lang != ZH:
            problems.insert(0, f"html lang={lang!r}")
        if problems:
            self.found[f"{who} {page.url.removeprefix(page.base_url)}"] = problems

    def visit(self, who: str, path: str) -> None:
        response = self.page.goto(self.page.base_url + path)
        assert response.status < 400, (path, response.status)
        self.look(who)

    def links(self, pattern: str) -> list[str]:
        hrefs = self.page.eval_on_selector_all(
            "a[href]", "els => els.map(e => e.getAttribute('href'))")
        return list(dict.fromkeys(h for h in hrefs if re.search(pattern, h)))


@pytest.fixture
def trial(db):
    call_command("seed_demo", stdout=open("/dev/null", "w"))  # noqa: SIM115
    with system_writes():  # the test's own set-up
        for username in ("nurse", "monitor", "datamanager"):
            user = User.objects.get(username=username)
            user.set_password(PASSWORD)
            user.language = ZH
            user.save()
    # A reminder is written in its reader's language when it is sent: the data manager read
    # English when the demo sent its serious-event notices (with tasks in-process; with Redis
    # they wait for a worker). Sent anew now, the walk reads them as she reads today.
    switched = User.objects.filter(username__in=("nurse", "monitor", "datamanager"))
    Notification.objects.filter(user__in=switched).delete()
    NotificationLog.objects.filter(user__in=switched).delete()
    for ae in AdverseEvent.objects.filter(is_serious=True):
        sae_notify_initial(ae_id=ae.pk)
    assert Notification.objects.filter(user__username="datamanager").exists()
    return proper_names()


def test_nurse_monitor_and_data_manager_work_in_chinese(browser, live_server, trial, request):
    context = browser.new_context(viewport={"width": 1280, "height": 1400}, locale="zh-CN")
    page = context.new_page()
    page.set_default_timeout(20_000)
    page.base_url = live_server.url
    walk = Walk(page, trial)
    try:
        # Before logging in: the browser's language.
        page.goto(page.base_url + "/accounts/login/")
        walk.look("anonymous")

        # The nurse: home, screening log, matrix, a casebook and every form of it, the query
        # list and a query on its form, notifications, her settings.
        log_in(page, "nurse")
        walk.look("nurse")
        for path in ("/screening/", "/casebook/matrix/", "/casebook/queries/",
                     "/notifications/", "/accounts/settings/", "/accounts/password/"):
            walk.visit("nurse", path)
        walk.visit("nurse", "/casebook/matrix/")
        casebooks = walk.links(r"^/casebook/subjects/\d+/$")
        assert casebooks
        for casebook in casebooks[:2]:
            walk.visit("nurse", casebook)
            forms_seen: set[str] = set()
            for link in walk.links(r"^/casebook/subjects/\d+/(visits/\d+/[a-z_]+/|logs/)"):
                code = re.sub(r"/\d+/?$", "/", re.sub(r"^/casebook/subjects/\d+/visits/\d+/", "",
                                                      link))
                if code in forms_seen:
                    continue
                forms_seen.add(code)
                walk.visit("nurse", link)
        # She answers an open query on its form, in Chinese.
        walk.visit("nurse", "/casebook/queries/?status=open")
        items = walk.links(r"#item-")
        assert items
        walk.visit("nurse", items[0])
        answer = page.get_by_role("button", name=zh("Answer"), exact=True)
        if answer.count():
            box = page.locator(".query", has=answer).first
            box.locator("input[name=text]").first.fill("已核对原始记录，数值无误。")
            box.get_by_role("button", name=zh("Answer"), exact=True).click()
            page.get_by_text(zh("Answer sent.")).wait_for()
            walk.look("nurse")

        # The monitor: queries, source data verification, a casebook and its forms, the
        # audit trail.
        log_in(page, "monitor")
        walk.look("monitor")
        for path in ("/casebook/queries/", "/casebook/source-data-verification/",
                     "/casebook/matrix/", "/casebook/audit-trail/", "/notifications/"):
            walk.visit("monitor", path)
        walk.visit("monitor", "/casebook/matrix/")
        casebook = walk.links(r"^/casebook/subjects/\d+/$")[0]
        walk.visit("monitor", casebook)
        for link in walk.links(r"^/casebook/subjects/\d+/visits/\d+/[a-z_]+/")[:6]:
            walk.visit("monitor", link)

        # The data manager: dashboard, queries, locks, exports, the data dictionary, the
        # edit-check specification, the audit trail.
        log_in(page, "datamanager")
        walk.look("datamanager")
        for path in ("/dashboard/", "/casebook/queries/", "/casebook/locks/", "/exports/",
                     "/exports/dictionary/", "/casebook/edit-checks/", "/casebook/audit-trail/",
                     "/casebook/source-data-verification/", "/notifications/"):
            walk.visit("datamanager", path)
    except Exception:
        page.screenshot(path="test-artifacts/chinese-walk.png", full_page=True)
        raise
    finally:
        context.close()

    assert len(walk.urls) > 30
    report = "\n".join(f"{where}\n    " + "\n    ".join(problems)
                       for where, problems in walk.found.items())
    assert not walk.found, f"English interface text on {len(walk.found)} pages:\n{report}"
