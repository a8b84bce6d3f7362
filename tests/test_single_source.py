"""Nothing but edc/protocol.py hard-codes a visit code (DESIGN.md, "One trial, declared once")."""

import re
from pathlib import Path

from edc import protocol

ROOT = Path(__file__).resolve().parent.parent
APP_DIRS = ("edc", "visits", "forms", "exports", "wiring")


def test_no_visit_code_literal_outside_the_protocol():
    codes = "|".join(re.escape(v.code) for v in protocol.VISITS)
    literal = re.compile(rf"""["']({codes})["']""")
    offenders = []
    for app in APP_DIRS:
        for path in (ROOT / app).rglob("*.py"):
            if path.name == "protocol.py" or "migrations" in path.parts:
                continue
            for number, line in enumerate(path.read_text().splitlines(), 1):
                if literal.search(line):
                    offenders.append(f"{path.relative_to(ROOT)}:{number}: {line.strip()}")
    assert offenders == []
