import dataclasses
import io
from collections import Counter, defaultdict

import pytest

from edc import protocol
from visits.randomization import (
    COLUMNS,
    STRATA,
    ListRow,
    format_report,
    generate_list,
    read_csv,
    stratum_for_nihss,
    stratum_label,
    validate_list,
    write_csv,
)

SITES = ("SZ01", "GZ02", "BJ03")


def blocks_of(rows: list[ListRow]) -> dict[tuple[str, str, int], list[ListRow]]:
    blocks: dict[tuple[str, str, int], list[ListRow]] = defaultdict(list)
    for row in rows:
        blocks[(row.site_code, row.stratum, row.block_number)].append(row)
    return blocks


def errors_for(rows: list[ListRow], **kwargs) -> str:
    report = validate_list(rows, **kwargs)
    assert not report.ok
    return "\n".join(report.errors)


@pytest.fixture
def rows() -> list[ListRow]:
    return generate_list(site_codes=["SZ01", "GZ02"], rows_per_stratum=12, seed=20260310)


# --- strata -------------------------------------------------------------------------------------


def test_strata_come_from_the_protocol():
    assert STRATA == tuple(stratum_label(low, high) for low, high in protocol.NIHSS_STRATA)
    assert STRATA == ("8-14", "15-20")


@pytest.mark.parametrize(
    ("total", "stratum"),
    [(8, "8-14"), (11, "8-14"), (14, "8-14"), (15, "15-20"), (20, "15-20")],
)
def test_stratum_for_nihss(total, stratum):
    assert stratum_for_nihss(total) == stratum


@pytest.mark.parametrize("total", [-1, 0, 7, 21, 42])
def test_stratum_for_nihss_outside_all_strata(total):
    with pytest.raises(ValueError, match="outside the randomization strata"):
        stratum_for_nihss(total)


# --- generation ---------------------------------------------------------------------------------


def test_same_seed_gives_the_identical_list():
    first = generate_list(site_codes=SITES, rows_per_stratum=30, seed=7)
    again = generate_list(site_codes=SITES, rows_per_stratum=30, seed=7)
    assert first == again


def test_different_seeds_give_different_allocations():
    first = generate_list(site_codes=SITES, rows_per_stratum=30, seed=7)
    other = generate_list(site_codes=SITES, rows_per_stratum=30, seed=8)
    assert [row.arm for row in first] != [row.arm for row in other]
    assert [row.kit_numbers for row in first] != [row.kit_numbers for row in other]


@pytest.mark.parametrize("seed", [0, 1, 2, 3, 12345])
def test_every_block_is_complete_and_balanced(seed):
    rows = generate_list(site_codes=SITES, rows_per_stratum=25, seed=seed)
    blocks = blocks_of(rows)
    assert {(site, stratum) for site, stratum, _ in blocks} == {
        (site, stratum) for site in SITES for stratum in STRATA
    }
    for block in blocks.values():
        size = block[0].block_size
        assert size in protocol.BLOCK_SIZES
        assert len(block) == size
        assert {row.block_size for row in block} == {size}
        assert Counter(row.arm for row in block) == {
            arm.code: size // len(protocol.ARMS) for arm in protocol.ARMS
        }
    assert validate_list(rows, known_site_codes=SITES).errors == []


def test_block_sizes_are_3_and_6_and_both_occur_in_a_long_list():
    rows = generate_list(site_codes=SITES, rows_per_stratum=120, seed=99)
    sizes = {block[0].block_size for block in blocks_of(rows).values()}
    assert sizes == {3, 6}


def test_sequence_is_numbered_per_site_and_stratum_and_rounded_up_to_whole_blocks():
    rows = generate_list(site_codes=SITES, rows_per_stratum=7, seed=5)
    by_stratum: dict[tuple[str, str], list[int]] = defaultdict(list)
    for row in rows:
        by_stratum[(row.site_code, row.stratum)].append(row.sequence)
    for sequences in by_stratum.values():
        assert sequences == list(range(1, len(sequences) + 1))
        assert 7 <= len(sequences) < 7 + max(protocol.BLOCK_SIZES)


def test_randomization_and_kit_numbers_are_unique():
    rows = generate_list(site_codes=SITES, rows_per_stratum=60, seed=3)
    numbers = [row.randomization_number for row in rows]
    kits = [kit for row in rows for kit in row.kit_numbers]
    assert len(set(numbers)) == len(numbers)
    assert all(number.startswith("R") and len(number) == 5 for number in numbers)
    assert len(set(kits)) == len(kits) == len(rows) * protocol.INFUSIONS_PER_SUBJECT
    assert all(len(kit) == 6 and kit.isdigit() and kit[0] != "0" for kit in kits)


def test_kit_numbers_do_not_follow_the_arm():
    rows = generate_list(site_codes=SITES, rows_per_stratum=60, seed=3)
    first_kits = [int(row.kit_numbers[0]) for row in rows]
    assert first_kits != sorted(first_kits)
    # Kit ranges overlap between arms: a kit number says nothing about what is in the bag.
    ranges = {
        arm.code: [int(row.kit_numbers[0]) for row in rows if row.arm == arm.code]
        for arm in protocol.ARMS
    }
    assert max(min(kits) for kits in ranges.values()) < min(max(kits) for kits in ranges.values())


@pytest.mark.parametrize(
    ("kwargs", "error"),
    [
        ({"site_codes": [], "rows_per_stratum": 3}, ValueError),
        ({"site_codes": ["SZ01", "SZ01"], "rows_per_stratum": 3}, ValueError),
        ({"site_codes": ["SZ01"], "rows_per_stratum": 0}, ValueError),
        ({"site_codes": "SZ01", "rows_per_stratum": 3}, TypeError),
    ],
)
def test_generate_list_rejects_bad_arguments(kwargs, error):
    with pytest.raises(error):
        generate_list(seed=1, **kwargs)


# --- CSV ----------------------------------------------------------------------------------------


def test_csv_round_trip(rows):
    file = io.StringIO(newline="")
    write_csv(rows, file)
    file.seek(0)
    assert file.readline().strip() == ",".join(COLUMNS)
    file.seek(0)
    parsed, errors = read_csv(file)
    assert errors == []
    assert parsed == rows


def test_read_csv_reports_malformed_lines_with_line_numbers(rows):
    file = io.StringIO(newline="")
    write_csv(rows[:2], file)
    text = file.getvalue().replace("\r\n", "\n")
    text += "\n".join(
        [
            "SZ01,8-14,3,1,3,R0003,C,111111,222222",  # line 4: kit_3 missing
            "SZ01,8-14,three,1,3,R0003,C,111111,222222,333333",  # line 5
            "SZ01,8-14,3,1,3,R0003,D,111111,222222,333333",  # line 6
            "SZ01,0-7,3,1,3,R0003,C,111111,222222,333333",  # line 7
            "SZ01,8-14,3,1,3,,C,111111,222222,333333",  # line 8
        ]
    )
    parsed, errors = read_csv(io.StringIO(text))
    assert parsed == rows[:2]
    assert len(errors) == 5
    assert errors[0].startswith("Line 4:")
    assert "kit_3" in errors[0]
    assert errors[1] == "Line 5: sequence must be a whole number, got 'three'."
    assert errors[2].startswith("Line 6: unknown arm 'D'")
    assert errors[3].startswith("Line 7: unknown stratum '0-7'")
    assert errors[4] == "Line 8: missing value for randomization_number."


def test_read_csv_reports_a_missing_header_column():
    header = ",".join(name for name in COLUMNS if name != "arm")
    parsed, errors = read_csv(io.StringIO(header + "\n"))
    assert parsed == []
    assert errors == ["Line 1: the header lacks column(s) arm."]


def test_read_csv_rejects_unexpected_columns_and_values():
    header = ",".join(COLUMNS)
    parsed, errors = read_csv(io.StringIO(f"{header},note\n"))
    assert errors == ["Line 1: unexpected column(s) 'note'."]
    parsed, errors = read_csv(io.StringIO(f"{header}\nSZ01,8-14,1,1,3,R0001,A,1,2,3,4\n"))
    assert parsed == []
    assert errors == ["Line 2: 11 values but the header has 10 columns."]


def test_read_csv_accepts_a_spreadsheet_byte_order_mark(rows):
    file = io.StringIO(newline="")
    write_csv(rows, file)
    parsed, errors = read_csv(io.StringIO("\ufeff" + file.getvalue()))
    assert (parsed, errors) == (rows, [])


def test_read_csv_of_an_empty_file():
    assert read_csv(io.StringIO("")) == ([], ["The file is empty: expected a header line."])


# --- validation ---------------------------------------------------------------------------------


def test_a_generated_list_validates(rows):
    report = validate_list(rows, known_site_codes={"SZ01", "GZ02"})
    assert report.ok
    assert report.errors == []
    assert report.warnings == []
    assert report.row_count == len(rows)
    assert set(report.rows_per_site_stratum) == {
        (site, stratum) for site in ("SZ01", "GZ02") for stratum in STRATA
    }
    assert sum(report.rows_per_arm.values()) == len(rows)
    assert set(report.rows_per_arm) == {arm.code for arm in protocol.ARMS}
    assert len(set(report.rows_per_arm.values())) == 1
    assert format_report(report).startswith(f"Randomization list: {len(rows)} rows")


def test_duplicate_randomization_number(rows):
    rows[5] = dataclasses.replace(rows[5], randomization_number=rows[0].randomization_number)
    assert f"Randomization number {rows[0].randomization_number} is used by 2 rows" in errors_for(
        rows
    )


def test_duplicate_kit_number(rows):
    kit = rows[0].kit_numbers[1]
    rows[-1] = dataclasses.replace(rows[-1], kit_numbers=(kit, *rows[-1].kit_numbers[1:]))
    assert f"Kit number {kit} appears 2 times" in errors_for(rows)


def test_unbalanced_block(rows):
    index = next(i for i, row in enumerate(rows) if row.block_size == 3)
    other = next(arm.code for arm in protocol.ARMS if arm.code != rows[index].arm)
    rows[index] = dataclasses.replace(rows[index], arm=other)
    row = rows[index]
    assert f"{row.site_code} {row.stratum} block {row.block_number}: unbalanced" in errors_for(rows)


def test_incomplete_block(rows):
    last = rows.pop()
    errors = errors_for(rows)
    assert f"{last.site_code} {last.stratum} block {last.block_number}: incomplete" in errors
    assert "gap in sequence" not in errors


def test_gap_in_sequence(rows):
    block = (rows[0].site_code, rows[0].stratum, 2)
    rows = [row for row in rows if (row.site_code, row.stratum, row.block_number) != block]
    errors = errors_for(rows)
    assert f"{rows[0].site_code} {rows[0].stratum}: gap in sequence, missing" in errors
    assert "incomplete" not in errors


def test_block_rows_must_be_contiguous(rows):
    # Swap the first row of block 1 with the last row of block 2 in the same site+stratum.
    second = max(i for i, row in enumerate(rows) if row.block_number == 2 and i < 12)
    assert rows[second].site_code == rows[0].site_code
    assert rows[second].stratum == rows[0].stratum
    first_row, second_row = rows[0], rows[second]
    rows[0] = dataclasses.replace(first_row, sequence=second_row.sequence)
    rows[second] = dataclasses.replace(second_row, sequence=first_row.sequence)
    errors = errors_for(rows)
    assert "block 1: rows are not contiguous in sequence" in errors
    assert "block 2: rows are not contiguous in sequence" in errors


def test_block_size_must_be_allowed_and_consistent(rows):
    rows[0] = dataclasses.replace(rows[0], block_size=rows[0].block_size + 1)
    assert "block_size differs between rows" in errors_for(rows)
    nine = [dataclasses.replace(row, block_size=9) for row in rows if row.block_number <= 2]
    assert "block size 9 is not one of 3, 6" in errors_for(nine)


def test_unknown_arm(rows):
    rows[2] = dataclasses.replace(rows[2], arm="D")
    assert "Unknown arm 'D' in 1 row(s)" in errors_for(rows)


def test_unknown_site(rows):
    errors = errors_for(rows, known_site_codes={"SZ01", "BJ03"})
    assert "Unknown site 'GZ02'" in errors
    assert "Unknown site 'SZ01'" not in errors
    report = validate_list(rows, known_site_codes={"SZ01", "BJ03"})
    assert "Site BJ03 has no rows in stratum 8-14." in report.warnings


def test_empty_list_is_an_error():
    report = validate_list([])
    assert report.errors == ["The list has no rows."]


def test_format_report_lists_errors_and_warnings(rows):
    rows[2] = dataclasses.replace(rows[2], arm="D")
    text = format_report(validate_list(rows, known_site_codes={"SZ01", "GZ02", "BJ03"}))
    assert "not loadable" in text
    assert "Errors:\n  - Unknown arm 'D'" in text
    assert "Warnings:\n  - Site BJ03 has no rows" in text
    assert "Rows per arm:" in text
