"""What the browser journeys do again and again: log in, fill a form, open a CRF; and the
watch that keeps every page the browser shows, to check it for the arm and for the basics of
accessibility."""

import datetime as dt
import re
from dataclasses import dataclass, field
from html import unescape
from zoneinfo import ZoneInfo

from edc import protocol
from edc.roles import Role
from tests.factories import PASSWORD

SHANGHAI = ZoneInfo("Asia/Shanghai")
ARM_LABELS = [str(arm.label) for arm in protocol.ARMS]
UNBLINDED_LABELS = [str(Role.UNBLINDED_PHARMACIST.label),
                    str(Role.UNBLINDED_STATISTICIAN.label)]


# Every problem a page has: unnamed controls, heading count, language, broken ARIA references.
STRUCTURE = """() => {
  const problems = [];
  const named = (el) => {
    if (el.id && [...document.querySelectorAll('label[for]')].some(
        (l) => l.htmlFor === el.id && l.textContent.trim())) return true;
    if (el.closest('label') && el.closest('label').textContent.trim()) return true;
    if ((el.getAttribute('aria-label') || '').trim()) return true;
    const ids = (el.getAttribute('aria-labelledby') || '').split(/\\s+/).filter(Boolean);
    return ids.length > 0 && ids.every((id) => document.getElementById(id));
  };
  for (const el of document.querySelectorAll('input, select, textarea')) {
    if (el.type === 'hidden' || !el.getClientRects().length) continue;
    if (!named(el)) problems.push(`no accessible name: ${el.tagName.toLowerCase()} ${el.name}`);
  }
  for (const el of document.querySelectorAll('[aria-describedby], [aria-labelledby]')) {
    for (const attr of ['aria-describedby', 'aria-labelledby']) {
      for (const id of (el.getAttribute(attr) || '').split(/\\s+/).filter(Boolean)) {
        if (!document.getElementById(id)) problems.push(`${attr} points at nothing: ${id}`);
      }
    }
  }
  const h1 = document.querySelectorAll('h1').length;
  if (h1 !== 1) problems.push(`${h1} h1 elements`);
  if (!document.documentElement.lang) problems.push('no lang attribute');
  return problems;
}"""


def local(moment: dt.datetime) -> str:
    """A datetime-local input's value, in the test site's time zone."""
    return moment.astimezone(SHANGHAI).strftime("%Y-%m-%dT%H:%M")


def log_in(page, username: str) -> None:
    page.context.clear_cookies()
    page.goto(page.base_url + "/accounts/login/")
    page.get_by_label("Username").fill(username)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Log in").click()
    page.wait_for_url(page.base_url + "/")


def fill(page, values: dict) -> None:
    """Fill a form by field name: radios are checked, everything else typed."""
    for name, value in values.items():
        radio = page.locator(f"input[type=radio][name='{name}'][value='{value}']")
        if radio.count():
            radio.check()
        else:
            page.locator(f"[name='{name}']").fill(str(value))


def open_form(page, visit_label: str, form_label: str) -> None:
    heading = page.locator("th", has_text=re.compile(f"^{re.escape(visit_label)}$"))
    row = page.locator("tr", has=heading)
    row.get_by_role("link", name=form_label, exact=True).click()


def save_complete(page) -> None:
    page.get_by_role("button", name="Save and mark complete").click()
    page.get_by_text("(Complete)").wait_for()


@dataclass
class Shown:
    url: str
    user: str  # the "name · role" line of the page header; empty when logged out
    html: str
    problems: list[str]

    @property
    def blinded(self) -> bool:
        return not any(label in self.user for label in UNBLINDED_LABELS)

    def arm_text(self) -> list[str]:
        """Arm labels and the word placebo, wherever they are in the page's HTML."""
        found = [label for label in ARM_LABELS if label in self.html]
        found += sorted(set(re.findall("placebo", self.html, flags=re.IGNORECASE)))
        return found


WHO = re.compile(r'<span class="who">(.*?)</span>', re.DOTALL)


@dataclass
class PageWatch:
    """Every page the browser showed: its HTML once loaded, and the problems STRUCTURE finds
    in it. The page sends them itself (an init script calling an exposed function), so a
    click that navigates on at once cannot lose a page."""

    pages: list[Shown] = field(default_factory=list)

    def attach(self, context) -> None:
        context.expose_binding("__e2eShown", self._shown)
        context.add_init_script(
            f"addEventListener('load', () => window.__e2eShown(location.href, "
            f"document.documentElement.outerHTML, ({STRUCTURE})()));"
        )

    def _shown(self, source, url: str, html: str, problems: list[str]) -> None:
        who = WHO.search(html)
        user = " ".join(unescape(who.group(1)).split()) if who else ""
        self.pages.append(Shown(url=url, user=user, html=html, problems=problems))

    def structure_problems(self) -> dict[str, list[str]]:
        return {p.url: p.problems for p in self.pages if p.problems}

    def arm_leaks(self) -> dict[str, list[str]]:
        """{"url (user)": arm text} of the pages a blinded user (or nobody) was shown."""
        return {f"{p.url} ({p.user or 'logged out'})": found
                for p in self.pages if p.blinded and (found := p.arm_text())}

    def seen_by(self, name: str) -> list[Shown]:
        return [p for p in self.pages if p.user.startswith(name)]

    def wait_for(self, page, found, seconds: float = 10) -> list[Shown]:
        """The pages shown so far once one satisfies ``found``, waiting up to ``seconds``: a
        page sends itself at its ``load`` event, which can come after the checks of its
        content have passed, and its message is taken only while Playwright waits."""
        for _ in range(int(seconds * 10)):
            if any(found(p) for p in self.pages):
                break
            page.wait_for_timeout(100)
        return self.pages
