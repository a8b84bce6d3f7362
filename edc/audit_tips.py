"""The audit chains' tips kept outside the database (issue 19 item 5).

A hash chain proves nothing against someone who can disable the append-only triggers: they
can rewrite the last rows of a table together with their links and its head, or delete the
last row with its link and move the head back, and the chain still verifies. So a periodic job
(:func:`tips_record`: Celery beat, or ``manage.py audit_tips``) appends the tip of every chain
(its last sequence number and hash, from :class:`AuditChainHead`) as one JSON line to a file
that lives elsewhere (``AUDIT_TIPS_FILE``: another volume or host, opened for appending only;
make it append-only for the operating system too, e.g. ``chattr +a``). ``verify_audit --tips
FILE`` (:func:`tips_check`) then checks that every link the file recorded still exists with
the hash recorded: a rewritten tail changes the hash of its first rewritten link, a cut tail
loses links. Every line is checked, not only the last one, so a rewrite that happened before
a later recording (whose tip is then that of the rewritten chain) still shows at the earlier
line.
"""

import json
import os
from collections.abc import Iterator
from pathlib import Path

from django.db import DEFAULT_DB_ALIAS
from django.utils import timezone

from edc.audit import ChainBreak, canonical_json
from edc.models import AuditChainHead, AuditChainLink

TIP_MISSING = "recorded tip missing"
TIP_REWRITTEN = "recorded tip rewritten"
TIPS_UNREADABLE = "tips file unreadable"

# Recorded (sequence, hash) pairs checked per round of queries while reading the file.
_CHECK_BATCH = 20_000


def chain_tips(*, using: str = DEFAULT_DB_ALIAS) -> dict[str, list]:
    """{table: [last sequence, last hash]} of every chain that has a link."""
    heads = (AuditChainHead.objects.using(using).filter(last_sequence__gt=0)
             .order_by("table").values_list("table", "last_sequence", "last_hash"))
    return {table: [sequence, digest] for table, sequence, digest in heads}


def tips_record(*, path: str | Path, using: str = DEFAULT_DB_ALIAS) -> dict:
    """Append the tips of every chain to ``path`` as one JSON line, written through to disk."""
    line = {"at": timezone.now().isoformat(), "tips": chain_tips(using=using)}
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    descriptor = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o640)
    with os.fdopen(descriptor, "a", encoding="utf-8") as file:
        file.write(canonical_json(line) + "\n")
        file.flush()
        os.fsync(file.fileno())
    return line


def _recorded(path: Path) -> Iterator[tuple[int, str, dict[str, list]]]:
    """(line number, time, tips) of each line of the file; ValueError names a bad line."""
    with path.open(encoding="utf-8") as file:
        for number, text in enumerate(file, start=1):
            if not text.strip():
                continue
            try:
                line = json.loads(text)
                tips = {str(table): [int(tip[0]), str(tip[1])]
                        for table, tip in line["tips"].items()}
            except (ValueError, KeyError, TypeError, IndexError, AttributeError) as error:
                raise ValueError(f"line {number} is not a tips record ({error})") from None
            yield number, str(line.get("at", "")), tips


def _check(pending: dict[str, dict[int, tuple[str, str]]], using: str,
           found: dict[str, tuple[int, ChainBreak]]) -> None:
    """Compare recorded (sequence → hash, time) of each table with its links; the first
    problem of a table (lowest sequence) is kept in ``found``."""
    for table, recorded in pending.items():
        sequences = sorted(recorded)
        links = {}
        for start in range(0, len(sequences), 5000):
            found_links = (AuditChainLink.objects.using(using)
                           .filter(table=table, sequence__in=sequences[start:start + 5000])
                           .values_list("sequence", "history_id", "row_hash"))
            links.update({sequence: (row_id, digest)
                          for sequence, row_id, digest in found_links})
        for sequence in sequences:
            digest, at = recorded[sequence]
            link = links.get(sequence)
            problem = None
            if link is None:
                problem = ChainBreak(table, None, TIP_MISSING,
                                     f"link {sequence}, recorded at {at}, is gone: the chain "
                                     f"was cut")
            elif link[1] != digest:
                problem = ChainBreak(table, link[0], TIP_REWRITTEN,
                                     f"link {sequence} has another hash than recorded at {at}")
            if problem is not None:
                if table not in found or sequence < found[table][0]:
                    found[table] = (sequence, problem)
                break


def tips_check(*, path: str | Path, using: str = DEFAULT_DB_ALIAS) -> list[ChainBreak]:
    """Every tip recorded in ``path`` still in its chain with its recorded hash; the first
    problem of each table (an unreadable file is one problem)."""
    found: dict[str, tuple[int, ChainBreak]] = {}
    pending: dict[str, dict[int, tuple[str, str]]] = {}
    count = 0
    try:
        for _number, at, tips in _recorded(Path(path)):
            for table, (sequence, digest) in tips.items():
                if sequence < 1:
                    continue
                pending.setdefault(table, {}).setdefault(sequence, (digest, at))
                count += 1
            if count >= _CHECK_BATCH:
                _check(pending, using, found)
                pending, count = {}, 0
    except (OSError, ValueError) as error:
        return [ChainBreak(str(path), None, TIPS_UNREADABLE, str(error))]
    _check(pending, using, found)
    return [found[table][1] for table in sorted(found)]
