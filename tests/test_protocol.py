"""edc/protocol.py must say what PROTOCOL.md says: arms, visits and windows, CRFs per visit,
log forms. The tables are read from the Markdown itself, so an edit to either side that the
other does not follow fails here."""

import datetime as dt
import re
from pathlib import Path

import pytest

from edc import protocol
from visits import schedule

ROOT = Path(__file__).resolve().parent.parent
# The repository's copy, and the team's shared copy when it sits beside the checkout.
SPEC_PATHS = [p for p in (ROOT / "docs" / "PROTOCOL.md", ROOT.parent / "shared" / "PROTOCOL.md")
              if p.exists()]

# PROTOCOL.md's row labels in the "CRFs expected at each visit" table → our CRF codes.
CRF_ROWS = {
    "Informed consent, demographics, medical history": ("consent", "demographics",
                                                        "medical_history"),
    "Stroke event and imaging": ("stroke_event",),
    "Eligibility checklist (derived + confirmed)": ("eligibility",),
    "NIHSS": ("nihss",),
    "mRS": ("mrs",),
    "Barthel Index": ("barthel",),
    "Vital signs": ("vital_signs",),
    "Laboratory panel": ("labs",),
    "Infusion record": ("infusion",),
    "PK/PD sample collection": ("pkpd",),
    "End of study": ("end_of_study",),
}
LOG_FORM_NAMES = {
    "adverse events": "adverse_event",
    "concomitant medications": "concomitant_medication",
    "protocol deviations": "protocol_deviation",
    "early termination": "early_termination",
    "death": "death",
}


def table_after(text: str, heading: str) -> list[list[str]]:
    """The rows (header first, separator dropped) of the first table under ``heading``."""
    section = text.split(heading, 1)[1]
    rows = []
    for line in section.splitlines():
        line = line.strip()
        if line.startswith("|"):
            cells = [c.strip() for c in line.strip("|").split("|")]
            if not all(re.fullmatch(r"-+", c) for c in cells):
                rows.append(cells)
        elif rows:
            break
    return rows


def day_number(text: str) -> int:
    return int(text.replace("−", "-").replace("Day", "").strip())


@pytest.fixture(params=SPEC_PATHS, ids=lambda p: str(p.relative_to(ROOT.parent)))
def spec(request) -> str:
    return request.param.read_text(encoding="utf-8")


def test_arms_match(spec):
    header, *rows = table_after(spec, "## Arms and blinding")
    assert header[0] == "arm"
    declared = {}
    for arm_cell, *infusions in rows:
        code, label = (part.strip() for part in arm_cell.split("—"))
        declared[code] = (label.lower(), tuple(infusions))
    assert {a.code: (str(a.label).lower(), a.infusions) for a in protocol.ARMS} == declared
    assert len(rows[0]) - 1 == protocol.INFUSIONS_PER_SUBJECT


def test_stratification_and_blocks_match(spec):
    blocks = re.search(r"block sizes (\d+)\s+and\s+(\d+)", spec)
    assert protocol.BLOCK_SIZES == tuple(int(n) for n in blocks.groups())
    strata = re.search(r"screening NIHSS \((\d+)–(\d+) vs (\d+)–(\d+)\)", spec)
    low1, high1, low2, high2 = (int(n) for n in strata.groups())
    assert protocol.NIHSS_STRATA == ((low1, high1), (low2, high2))
    ratio = re.search(r"Allocation (\d+):(\d+):(\d+)", spec)
    assert tuple(int(n) for n in ratio.groups()) == protocol.ALLOCATION_RATIO


def test_visit_schedule_matches(spec):
    header, *rows = table_after(spec, "## Visit schedule")
    assert header == ["code", "visit", "target", "window"]
    assert [r[0] for r in rows] == [v.code for v in protocol.VISITS]
    day1 = dt.date(2026, 3, 10)
    for code, label, target, window in rows:
        visit = protocol.visit_def(code)
        assert str(visit.label) == label
        computed = schedule.visit_window(visit, day1)
        first = schedule.study_day(day1, computed.start)
        last = schedule.study_day(day1, computed.end)
        if " to " in window:  # "Day −2 to Day 1"
            start, end = (day_number(part) for part in window.split(" to "))
            assert (first, last) == (start, end), code
            assert "before Day 1" in target
            assert schedule.study_day(day1, computed.planned) < 1
        else:
            target_day = day_number(target)
            width = 0 if window == "0" else int(window.lstrip("±"))
            assert schedule.study_day(day1, computed.planned) == target_day, code
            assert (first, last) == (target_day - width, target_day + width), code


def test_crfs_per_visit_match(spec):
    header, *rows = table_after(spec, "## CRFs expected at each visit")
    visit_codes = header[1:]
    assert visit_codes == [v.code for v in protocol.VISITS]
    expected: dict[str, set[str]] = {code: set() for code in visit_codes}
    for label, *marks in rows:
        for crf_code in CRF_ROWS[label]:
            for visit_code, mark in zip(visit_codes, marks, strict=True):
                if "✓" in mark:
                    expected[visit_code].add(crf_code)
    assert {v.code: set(v.crfs) for v in protocol.VISITS} == expected
    scheduled = {code for codes in CRF_ROWS.values() for code in codes}
    assert scheduled == {c.code for c in protocol.CRFS if not c.is_log}


def test_log_forms_match(spec):
    sentence = re.search(r"Log forms, entered whenever they happen: ([^.]+)\.", spec)
    names = [n.strip() for n in sentence.group(1).replace("\n", " ").split(",")]
    assert [LOG_FORM_NAMES[n] for n in names] == [c.code for c in protocol.LOG_FORMS]


def test_pkpd_time_points_match():
    """The PK/PD time points of each visit, from the repository's PROTOCOL.md (the table is
    checked wherever a copy has it; the team's shared copy predates it)."""
    texts = [p.read_text(encoding="utf-8") for p in SPEC_PATHS]
    with_table = [t for t in texts if "## PK/PD time points" in t]
    assert with_table, "docs/PROTOCOL.md has no PK/PD time-point table"
    labels = {str(t.label).lower(): t.code for t in protocol.PKPD_TIMEPOINTS}
    for text in with_table:
        header, *rows = table_after(text, "## PK/PD time points")
        assert header == ["visit", "time points"]
        declared = {code: tuple(labels[p.strip()] for p in points.split(","))
                    for code, points in rows}
        assert declared == {v.code: v.pkpd_timepoints for v in protocol.VISITS
                            if v.pkpd_timepoints}


def test_pkpd_time_points_are_declared_where_pkpd_is_expected():
    codes = {t.code for t in protocol.PKPD_TIMEPOINTS}
    for visit in protocol.VISITS:
        assert bool(visit.pkpd_timepoints) == ("pkpd" in visit.crfs), visit.code
        assert set(visit.pkpd_timepoints) <= codes, visit.code
        pkpd = [slot for code, slot in visit.expected_forms() if code == "pkpd"]
        assert pkpd == list(visit.pkpd_timepoints)


def test_infusion_visits_are_the_infusion_record_visits():
    with_infusion = [v for v in protocol.VISITS if "infusion" in v.crfs]
    assert [v.infusion_number for v in with_infusion] == [1, 2, 3]
    assert all(v.infusion_number is None for v in protocol.VISITS if v not in with_infusion)


def test_protocol_is_immutable():
    with pytest.raises(AttributeError):
        protocol.VISITS[0].day = 5  # type: ignore[misc]
    assert isinstance(protocol.VISITS, tuple)
    assert isinstance(protocol.VISITS[0].crfs, tuple)


def test_every_crf_code_in_visits_is_declared():
    declared = {c.code for c in protocol.CRFS}
    for visit in protocol.VISITS:
        assert set(visit.crfs) <= declared, visit.code
