"""The randomization list: generate, read, write and check it. Pure functions, no database.

PROTOCOL.md "Arms and blinding": allocation 1:1:1 by a pre-generated list of permuted blocks
(block sizes 3 and 6, varied), stratified by site and by screening NIHSS (8–14 vs 15–20). Each
row carries a randomization number and one kit number per planned infusion; site staff see only
those, so kit numbers are random and say nothing about the arm.

Within a site+stratum, ``sequence`` is the 1-based order in which rows are used and
``block_number`` is the 1-based block the row belongs to (both restart for every site+stratum).

The list is generated with ``random.Random(seed)``: the point is that the statistician can
regenerate and verify the very same list from its seed, which ``secrets`` cannot do. It is not
cryptographic secrecy: whoever knows the seed can rebuild the list, so the seed is as secret as
the list itself, and both are protected by access control.
"""

import csv
import random
from collections import Counter, defaultdict
from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass, field
from typing import IO

from edc.protocol import ALLOCATION_RATIO, ARMS, BLOCK_SIZES, INFUSIONS_PER_SUBJECT, NIHSS_STRATA

ARM_CODES: tuple[str, ...] = tuple(arm.code for arm in ARMS)
KIT_COLUMNS: tuple[str, ...] = tuple(f"kit_{n}" for n in range(1, INFUSIONS_PER_SUBJECT + 1))
COLUMNS: tuple[str, ...] = (
    "site",
    "stratum",
    "sequence",
    "block",
    "block_size",
    "randomization_number",
    "arm",
    *KIT_COLUMNS,
)
_INTEGER_COLUMNS = ("sequence", "block", "block_size")

# Kit numbers are 6 digits without a leading zero, so a spreadsheet cannot silently shorten them.
KIT_NUMBER_MIN = 100_000
KIT_NUMBER_MAX = 999_999
RANDOMIZATION_NUMBER_PREFIX = "R"
RANDOMIZATION_NUMBER_DIGITS = 4
# A whole list drawn with a single block size makes the next allocation guessable.
_MIN_BLOCKS_FOR_VARIETY_WARNING = 10
_MAX_REFERENCES = 5


def stratum_label(low: int, high: int) -> str:
    """The stratum as written in the list, e.g. ``"8-14"``."""
    return f"{low}-{high}"


STRATA: tuple[str, ...] = tuple(stratum_label(low, high) for low, high in NIHSS_STRATA)


def stratum_for_nihss(total: int) -> str:
    """The stratum of a screening NIHSS total; ValueError if it lies outside all strata."""
    for low, high in NIHSS_STRATA:
        if low <= total <= high:
            return stratum_label(low, high)
    raise ValueError(
        f"NIHSS total {total} is outside the randomization strata {', '.join(STRATA)}."
    )


@dataclass(frozen=True)
class ListRow:
    site_code: str
    stratum: str
    sequence: int
    block_number: int
    block_size: int
    randomization_number: str
    arm: str
    # One kit per planned infusion (protocol.INFUSIONS_PER_SUBJECT).
    kit_numbers: tuple[str, str, str]


def arms_per_block(block_size: int) -> dict[str, int] | None:
    """How often each arm occurs in a balanced block, or None if the size cannot be balanced."""
    unit = sum(ALLOCATION_RATIO)
    if block_size <= 0 or block_size % unit:
        return None
    return {
        code: block_size // unit * ratio
        for code, ratio in zip(ARM_CODES, ALLOCATION_RATIO, strict=True)
    }


# --- generation -------------------------------------------------------------------------------


def generate_list(*, site_codes: Sequence[str], rows_per_stratum: int, seed: int) -> list[ListRow]:
    """A stratified permuted-block list; the same arguments always give the same list.

    For every site and NIHSS stratum, blocks of a size drawn at random from BLOCK_SIZES, each
    holding every arm in the allocation ratio in shuffled order, are added until at least
    ``rows_per_stratum`` rows exist (the count is rounded up to whole blocks).
    """
    _check_generate_arguments(site_codes, rows_per_stratum)
    rng = random.Random(seed)  # noqa: S311 - reproducible on purpose, see the module docstring
    planned: list[tuple[str, str, int, int, int, str]] = []
    for site_code in site_codes:
        for stratum in STRATA:
            sequence = 0
            block_number = 0
            while sequence < rows_per_stratum:
                block_number += 1
                block_size = rng.choice(BLOCK_SIZES)
                counts = arms_per_block(block_size) or {}
                block = [code for code, count in counts.items() for _ in range(count)]
                rng.shuffle(block)
                for arm_code in block:
                    sequence += 1
                    planned.append(
                        (site_code, stratum, sequence, block_number, block_size, arm_code)
                    )

    kit_count = len(planned) * INFUSIONS_PER_SUBJECT
    if kit_count > KIT_NUMBER_MAX - KIT_NUMBER_MIN + 1:
        raise ValueError(f"{len(planned)} rows need more kit numbers than 6 digits provide.")
    kits = [str(n) for n in rng.sample(range(KIT_NUMBER_MIN, KIT_NUMBER_MAX + 1), kit_count)]
    digits = max(RANDOMIZATION_NUMBER_DIGITS, len(str(len(planned))))

    rows = []
    for index, (site_code, stratum, sequence, block_number, block_size, arm_code) in enumerate(
        planned
    ):
        first_kit = index * INFUSIONS_PER_SUBJECT
        rows.append(
            ListRow(
                site_code=site_code,
                stratum=stratum,
                sequence=sequence,
                block_number=block_number,
                block_size=block_size,
                randomization_number=f"{RANDOMIZATION_NUMBER_PREFIX}{index + 1:0{digits}d}",
                arm=arm_code,
                kit_numbers=tuple(kits[first_kit : first_kit + INFUSIONS_PER_SUBJECT]),
            )
        )
    return rows


def _check_generate_arguments(site_codes: Sequence[str], rows_per_stratum: int) -> None:
    if isinstance(site_codes, str):
        raise TypeError("site_codes must be a sequence of site codes, not a single string.")
    if not site_codes:
        raise ValueError("At least one site code is required.")
    if any(not code or code != code.strip() for code in site_codes):
        raise ValueError("Site codes must be non-empty and have no surrounding spaces.")
    duplicates = sorted(code for code, n in Counter(site_codes).items() if n > 1)
    if duplicates:
        raise ValueError(f"Duplicate site codes: {', '.join(duplicates)}.")
    if rows_per_stratum < 1:
        raise ValueError("rows_per_stratum must be at least 1.")
    unbalanced = [size for size in BLOCK_SIZES if arms_per_block(size) is None]
    if unbalanced:
        raise ValueError(f"Block sizes {unbalanced} cannot hold the allocation ratio.")


# --- CSV ----------------------------------------------------------------------------------------


def write_csv(rows: Iterable[ListRow], file: IO[str]) -> None:
    """Write the list with a header line; ``file`` is a text file opened with ``newline=""``."""
    writer = csv.writer(file)
    writer.writerow(COLUMNS)
    for row in rows:
        writer.writerow(
            (
                row.site_code,
                row.stratum,
                row.sequence,
                row.block_number,
                row.block_size,
                row.randomization_number,
                row.arm,
                *row.kit_numbers,
            )
        )


def read_csv(file: Iterable[str]) -> tuple[list[ListRow], list[str]]:
    """Parse a list written by ``write_csv`` (columns in any order).

    Returns the rows that parsed and one message per malformed line, with its line number.
    Any error means the file must not be imported; run ``validate_list`` on the rows as well.
    """
    reader = csv.reader(file)
    header = next(reader, None)
    if header is None:
        return [], ["The file is empty: expected a header line."]
    header = [name.strip().lstrip("\ufeff").strip() for name in header]
    header_errors = _header_errors(header)
    if header_errors:
        return [], header_errors

    position = {name: header.index(name) for name in COLUMNS}
    rows: list[ListRow] = []
    errors: list[str] = []
    for values in reader:
        if not any(value.strip() for value in values):
            continue
        line = reader.line_num
        if len(values) > len(header):
            errors.append(
                f"Line {line}: {len(values)} values but the header has {len(header)} columns."
            )
            continue
        missing = [name for name in COLUMNS if position[name] >= len(values)]
        if missing:
            errors.append(f"Line {line}: missing column(s) {', '.join(missing)}.")
            continue
        row, problems = _parse_row({name: values[position[name]].strip() for name in COLUMNS})
        if row is None:
            errors.extend(f"Line {line}: {problem}" for problem in problems)
        else:
            rows.append(row)
    return rows, errors


def _header_errors(header: list[str]) -> list[str]:
    errors = []
    missing = [name for name in COLUMNS if name not in header]
    if missing:
        errors.append(f"Line 1: the header lacks column(s) {', '.join(missing)}.")
    unexpected = [name for name in header if name not in COLUMNS]
    if unexpected:
        errors.append(f"Line 1: unexpected column(s) {', '.join(map(repr, unexpected))}.")
    repeated = sorted(name for name, n in Counter(header).items() if n > 1 and name in COLUMNS)
    if repeated:
        errors.append(f"Line 1: column(s) {', '.join(repeated)} appear more than once.")
    return errors


def _parse_row(values: dict[str, str]) -> tuple[ListRow | None, list[str]]:
    problems = [f"missing value for {name}." for name in COLUMNS if not values[name]]
    numbers: dict[str, int] = {}
    for name in _INTEGER_COLUMNS:
        if not values[name]:
            continue
        try:
            numbers[name] = int(values[name])
        except ValueError:
            problems.append(f"{name} must be a whole number, got {values[name]!r}.")
    if values["arm"] and values["arm"] not in ARM_CODES:
        problems.append(f"unknown arm {values['arm']!r} (expected one of {', '.join(ARM_CODES)}).")
    if values["stratum"] and values["stratum"] not in STRATA:
        problems.append(
            f"unknown stratum {values['stratum']!r} (expected one of {', '.join(STRATA)})."
        )
    if problems:
        return None, problems
    row = ListRow(
        site_code=values["site"],
        stratum=values["stratum"],
        sequence=numbers["sequence"],
        block_number=numbers["block"],
        block_size=numbers["block_size"],
        randomization_number=values["randomization_number"],
        arm=values["arm"],
        kit_numbers=tuple(values[name] for name in KIT_COLUMNS),
    )
    return row, []


# --- validation ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class ValidationReport:
    errors: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    rows_per_site_stratum: dict[tuple[str, str], int] = field(default_factory=dict)
    rows_per_arm: dict[str, int] = field(default_factory=dict)
    block_count: int = 0

    @property
    def ok(self) -> bool:
        return not self.errors

    @property
    def row_count(self) -> int:
        return sum(self.rows_per_site_stratum.values())


def validate_list(
    rows: Sequence[ListRow], *, known_site_codes: Collection[str] | None = None
) -> ValidationReport:
    """Check a list against the protocol before it is loaded; errors block the import."""
    errors: list[str] = []
    warnings: list[str] = []
    if not rows:
        errors.append("The list has no rows.")
    errors += _value_errors(rows, known_site_codes)
    errors += _duplicate_errors(rows)

    by_stratum: dict[tuple[str, str], list[ListRow]] = defaultdict(list)
    for row in rows:
        by_stratum[(row.site_code, row.stratum)].append(row)
    block_sizes: list[int] = []
    for (site_code, stratum), stratum_rows in sorted(by_stratum.items(), key=_in_list_order):
        place = f"{site_code} {stratum}"
        ordered = sorted(stratum_rows, key=lambda row: row.sequence)
        errors += _sequence_errors(place, ordered)
        block_errors, block_warnings, sizes = _block_findings(place, ordered)
        errors += block_errors
        warnings += block_warnings
        block_sizes += sizes

    warnings += _coverage_warnings(by_stratum, known_site_codes)
    if len(block_sizes) >= _MIN_BLOCKS_FOR_VARIETY_WARNING and len(set(block_sizes)) == 1:
        warnings.append(
            f"All {len(block_sizes)} blocks have size {block_sizes[0]}; the protocol asks for "
            f"varied block sizes ({', '.join(map(str, BLOCK_SIZES))})."
        )
    return ValidationReport(
        errors=errors,
        warnings=warnings,
        rows_per_site_stratum={
            key: len(value) for key, value in sorted(by_stratum.items(), key=_in_list_order)
        },
        rows_per_arm=dict(sorted(Counter(row.arm for row in rows).items())),
        block_count=len(block_sizes),
    )


def _in_list_order(item: tuple[tuple[str, str], object]) -> tuple[str, int, str]:
    """Sort key: site code, then strata in protocol order (unknown strata last)."""
    (site_code, stratum), _ = item
    rank = STRATA.index(stratum) if stratum in STRATA else len(STRATA)
    return site_code, rank, stratum


def _describe(row: ListRow) -> str:
    number = row.randomization_number or "(no number)"
    return f"{number} ({row.site_code} {row.stratum} #{row.sequence})"


def _references(items: Sequence[str]) -> str:
    shown = ", ".join(items[:_MAX_REFERENCES])
    more = len(items) - _MAX_REFERENCES
    return f"{shown} and {more} more" if more > 0 else shown


def _value_errors(rows: Sequence[ListRow], known_site_codes: Collection[str] | None) -> list[str]:
    errors = []
    unknown: dict[tuple[str, str], list[str]] = defaultdict(list)
    for row in rows:
        if row.arm not in ARM_CODES:
            unknown[("arm", row.arm)].append(_describe(row))
        if row.stratum not in STRATA:
            unknown[("stratum", row.stratum)].append(_describe(row))
        if known_site_codes is not None and row.site_code not in known_site_codes:
            unknown[("site", row.site_code)].append(_describe(row))
        if not row.randomization_number:
            errors.append(f"{_describe(row)}: missing randomization number.")
        if len(row.kit_numbers) != INFUSIONS_PER_SUBJECT:
            errors.append(
                f"{_describe(row)}: {len(row.kit_numbers)} kit numbers, expected "
                f"{INFUSIONS_PER_SUBJECT} (one per infusion)."
            )
        if any(not kit for kit in row.kit_numbers):
            errors.append(f"{_describe(row)}: empty kit number.")
    expected = {
        "arm": ", ".join(ARM_CODES),
        "stratum": ", ".join(STRATA),
        "site": ", ".join(sorted(known_site_codes or ())),
    }
    for (kind, value), where in unknown.items():
        errors.append(
            f"Unknown {kind} {value!r} in {len(where)} row(s): {_references(where)} "
            f"(expected one of: {expected[kind]})."
        )
    return errors


def _duplicate_errors(rows: Sequence[ListRow]) -> list[str]:
    errors = []
    numbers: dict[str, list[str]] = defaultdict(list)
    kits: dict[str, list[str]] = defaultdict(list)
    for row in rows:
        numbers[row.randomization_number].append(_describe(row))
        for kit in row.kit_numbers:
            kits[kit].append(_describe(row))
    for number, where in numbers.items():
        if number and len(where) > 1:
            errors.append(
                f"Randomization number {number} is used by {len(where)} rows: {_references(where)}."
            )
    for kit, where in kits.items():
        if kit and len(where) > 1:
            errors.append(f"Kit number {kit} appears {len(where)} times: {_references(where)}.")
    return errors


def _sequence_errors(place: str, ordered: Sequence[ListRow]) -> list[str]:
    errors = []
    sequences = [row.sequence for row in ordered]
    repeated = sorted(n for n, count in Counter(sequences).items() if count > 1)
    if repeated:
        errors.append(f"{place}: sequence number(s) used more than once: {_ranges(repeated)}.")
    below_one = sorted({n for n in sequences if n < 1})
    if below_one:
        errors.append(f"{place}: sequence numbers must start at 1, found {_ranges(below_one)}.")
    missing = sorted(set(range(1, max(sequences, default=0) + 1)) - set(sequences))
    if missing:
        errors.append(f"{place}: gap in sequence, missing {_ranges(missing)}.")
    return errors


def _ranges(numbers: Sequence[int]) -> str:
    """``[1, 2, 3, 7]`` as ``"1-3, 7"``."""
    parts: list[str] = []
    start = previous = numbers[0]
    for number in [*numbers[1:], None]:
        if number is not None and number == previous + 1:
            previous = number
            continue
        parts.append(str(start) if start == previous else f"{start}-{previous}")
        if number is not None:
            start = previous = number
    return ", ".join(parts)


def _block_findings(
    place: str, ordered: Sequence[ListRow]
) -> tuple[list[str], list[str], list[int]]:
    """Errors, warnings and declared sizes for the blocks of one site+stratum, in sequence order."""
    errors: list[str] = []
    warnings: list[str] = []
    positions: dict[int, list[int]] = defaultdict(list)
    for index, row in enumerate(ordered):
        positions[row.block_number].append(index)

    sizes = []
    for block_number, indexes in sorted(positions.items()):
        block = [ordered[i] for i in indexes]
        name = f"{place} block {block_number}"
        if indexes[-1] - indexes[0] + 1 != len(indexes):
            errors.append(
                f"{name}: rows are not contiguous in sequence "
                f"({', '.join(str(row.sequence) for row in block)})."
            )
        declared = Counter(row.block_size for row in block)
        size = declared.most_common(1)[0][0]
        sizes.append(size)
        if len(declared) > 1:
            errors.append(
                f"{name}: block_size differs between rows "
                f"({', '.join(str(n) for n in sorted(declared))})."
            )
        if size not in BLOCK_SIZES:
            errors.append(
                f"{name}: block size {size} is not one of {', '.join(map(str, BLOCK_SIZES))}."
            )
        if len(block) != size:
            errors.append(f"{name}: incomplete, {len(block)} row(s) for block size {size}.")
            continue
        expected = arms_per_block(size)
        found = Counter(row.arm for row in block)
        if expected is None or found != Counter(expected):
            arms = ", ".join(f"{code}×{found[code]}" for code in sorted(found))
            errors.append(
                f"{name}: unbalanced, arms {arms}; each of {', '.join(ARM_CODES)} must occur "
                f"equally often ({':'.join(map(str, ALLOCATION_RATIO))})."
            )
    if list(positions) != sorted(positions):
        warnings.append(f"{place}: block numbers are not increasing along the sequence.")
    return errors, warnings, sizes


def _coverage_warnings(
    by_stratum: dict[tuple[str, str], list[ListRow]], known_site_codes: Collection[str] | None
) -> list[str]:
    sites = {site_code for site_code, _ in by_stratum}
    if known_site_codes is not None:
        sites |= set(known_site_codes)
    return [
        f"Site {site_code} has no rows in stratum {stratum}."
        for site_code in sorted(sites)
        for stratum in STRATA
        if (site_code, stratum) not in by_stratum
    ]


def format_report(report: ValidationReport) -> str:
    """Plain-text report for the management command that loads a list."""
    verdict = "OK" if report.ok else f"{len(report.errors)} error(s), not loadable"
    lines = [
        f"Randomization list: {report.row_count} rows in {report.block_count} blocks, {verdict}."
    ]
    if report.errors:
        lines += ["", "Errors:", *(f"  - {message}" for message in report.errors)]
    if report.warnings:
        lines += ["", "Warnings:", *(f"  - {message}" for message in report.warnings)]
    if report.rows_per_site_stratum:
        lines += ["", "Rows per site and NIHSS stratum:"]
        lines += [
            f"  {site_code:<10} {stratum:<8} {count:>6}"
            for (site_code, stratum), count in report.rows_per_site_stratum.items()
        ]
    if report.rows_per_arm:
        lines += ["", "Rows per arm:"]
        lines += [f"  {code:<10} {count:>6}" for code, count in report.rows_per_arm.items()]
    return "\n".join(lines)
