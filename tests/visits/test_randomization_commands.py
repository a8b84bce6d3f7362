import dataclasses
import hashlib
import io
import stat
from pathlib import Path

import pytest
from django.core.management import CommandError, call_command

from edc.roles import Role
from tests.factories import SiteFactory, UserFactory
from visits.models import RandomizationSlot
from visits.randomization import ListRow, generate_list, read_csv, write_csv


@pytest.fixture
def sites(site, other_site):
    return [site, other_site]


@pytest.fixture
def statistician(db):
    return UserFactory(username="stats", role=Role.UNBLINDED_STATISTICIAN)


def run(command: str, *args, **options) -> str:
    out = io.StringIO()
    call_command(command, *args, stdout=out, stderr=io.StringIO(), **options)
    return out.getvalue()


def generate(output: Path, *, seed: int = 7, rows_per_stratum: int = 6, **options) -> str:
    return run(
        "randomization_generate",
        seed=seed,
        rows_per_stratum=rows_per_stratum,
        output=output,
        **options,
    )


def import_list(path: Path, *, user: str = "stats", list_name: str = "main-v1", **options) -> str:
    return run("randomization_import", str(path), user=user, list_name=list_name, **options)


def write_rows(path: Path, rows: list[ListRow]) -> Path:
    with path.open("w", encoding="utf-8", newline="") as file:
        write_csv(rows, file)
    return path


def read_rows(path: Path) -> list[ListRow]:
    with path.open(encoding="utf-8", newline="") as file:
        rows, errors = read_csv(file)
    assert errors == []
    return rows


@pytest.fixture
def list_file(sites, tmp_path) -> Path:
    return write_rows(
        tmp_path / "list.csv",
        generate_list(site_codes=["SZ01", "GZ02"], rows_per_stratum=6, seed=11),
    )


# --- randomization_generate ------------------------------------------------------------------


def test_generate_is_reproducible(sites, tmp_path):
    first, second, other = tmp_path / "a.csv", tmp_path / "b.csv", tmp_path / "c.csv"
    out = generate(first, seed=42)
    generate(second, seed=42)
    generate(other, seed=43)

    assert first.read_bytes() == second.read_bytes()
    assert first.read_bytes() != other.read_bytes()
    assert hashlib.sha256(first.read_bytes()).hexdigest() in out
    assert "OK" in out
    assert "Rows per arm" in out
    # The report gives counts per arm; no row of the list is printed.
    assert "R0001" not in out
    assert stat.S_IMODE(first.stat().st_mode) == 0o600
    assert RandomizationSlot.objects.count() == 0


def test_generate_uses_all_active_sites_by_default(sites, tmp_path):
    SiteFactory(code="BJ03", is_active=False)
    generate(tmp_path / "list.csv")

    assert {row.site_code for row in read_rows(tmp_path / "list.csv")} == {"SZ01", "GZ02"}


def test_generate_for_chosen_sites(sites, tmp_path):
    generate(tmp_path / "list.csv", sites=" GZ02 ")

    assert {row.site_code for row in read_rows(tmp_path / "list.csv")} == {"GZ02"}


def test_generate_refuses_unknown_site(sites, tmp_path):
    with pytest.raises(CommandError, match=r"Unknown site code.*XX99"):
        generate(tmp_path / "list.csv", sites="SZ01,XX99")
    assert not (tmp_path / "list.csv").exists()


def test_generate_refuses_to_overwrite_unless_forced(sites, tmp_path):
    output = tmp_path / "list.csv"
    output.write_text("keep me")

    with pytest.raises(CommandError, match=r"already exists.*--force"):
        generate(output)
    assert output.read_text() == "keep me"

    generate(output, force=True)
    assert len(read_rows(output)) >= 4 * 6


def test_generate_and_load(sites, statistician, tmp_path):
    output = tmp_path / "list.csv"
    out = generate(output, load=True, user="stats", list_name="main-v1")

    rows = read_rows(output)
    slots = RandomizationSlot.objects.all()
    assert slots.count() == len(rows)
    assert f"Loaded {len(rows)} rows" in out
    assert {slot.list_name for slot in slots} == {"main-v1"}
    loaded = {
        (s.site.code, s.stratum, s.sequence, s.randomization_number, s.arm, s.kits) for s in slots
    }
    assert loaded == {
        (r.site_code, r.stratum, r.sequence, r.randomization_number, r.arm, r.kit_numbers)
        for r in rows
    }
    history = RandomizationSlot.history.all()
    assert history.count() == len(rows)
    assert {h.history_user for h in history} == {statistician}
    assert {h.history_type for h in history} == {"+"}


@pytest.mark.parametrize("role", [Role.DATA_MANAGER, Role.UNBLINDED_PHARMACIST, Role.SITE_STAFF])
def test_generate_load_refuses_other_roles(sites, tmp_path, role):
    UserFactory(username="someone", role=role)

    with pytest.raises(CommandError, match="may not load randomization lists"):
        generate(tmp_path / "list.csv", load=True, user="someone", list_name="main-v1")
    assert RandomizationSlot.objects.count() == 0
    assert not (tmp_path / "list.csv").exists()


def test_generate_load_refuses_inactive_statistician(sites, tmp_path):
    UserFactory(username="stats", role=Role.UNBLINDED_STATISTICIAN, is_active=False)

    with pytest.raises(CommandError, match="inactive"):
        generate(tmp_path / "list.csv", load=True, user="stats", list_name="main-v1")
    assert RandomizationSlot.objects.count() == 0


def test_generate_load_refuses_unknown_user(sites, tmp_path):
    with pytest.raises(CommandError, match="No user named 'nobody'"):
        generate(tmp_path / "list.csv", load=True, user="nobody", list_name="main-v1")


def test_generate_load_needs_user_and_list_name(sites, statistician, tmp_path):
    with pytest.raises(CommandError, match="--load needs --user and --list-name"):
        generate(tmp_path / "list.csv", load=True, user="stats")
    with pytest.raises(CommandError, match="only used with --load"):
        generate(tmp_path / "list.csv", user="stats")


def test_generate_load_refuses_a_list_name_already_loaded(sites, statistician, tmp_path):
    generate(tmp_path / "a.csv", sites="SZ01", load=True, user="stats", list_name="main-v1")
    count = RandomizationSlot.objects.count()

    with pytest.raises(CommandError, match="'main-v1' is already loaded"):
        generate(tmp_path / "b.csv", sites="GZ02", load=True, user="stats", list_name="main-v1")
    assert RandomizationSlot.objects.count() == count
    # The list was neither loaded nor written.
    assert not (tmp_path / "b.csv").exists()


# --- randomization_import --------------------------------------------------------------------


def test_import_loads_every_row(statistician, list_file):
    rows = read_rows(list_file)
    out = import_list(list_file)

    assert f"Loaded {len(rows)} rows as list 'main-v1'" in out
    assert "OK" in out
    slots = RandomizationSlot.objects.all()
    assert slots.count() == len(rows)
    assert {s.randomization_number: s.arm for s in slots} == {
        r.randomization_number: r.arm for r in rows
    }
    assert {s.randomization_number: s.kits for s in slots} == {
        r.randomization_number: r.kit_numbers for r in rows
    }
    assert {h.history_user for h in RandomizationSlot.history.all()} == {statistician}


def test_import_dry_run_loads_nothing(statistician, list_file):
    out = import_list(list_file, dry_run=True)

    assert "Dry run" in out
    assert "Nothing was loaded" in out
    assert RandomizationSlot.objects.count() == 0


def test_import_refuses_a_non_statistician(sites, list_file):
    UserFactory(username="dm", role=Role.DATA_MANAGER)

    with pytest.raises(CommandError, match="may not load randomization lists"):
        import_list(list_file, user="dm")
    assert RandomizationSlot.objects.count() == 0


def test_import_of_a_duplicated_kit_loads_nothing(statistician, list_file):
    rows = read_rows(list_file)
    kit = rows[0].kit_numbers[0]
    rows[5] = dataclasses.replace(rows[5], kit_numbers=(kit, *rows[5].kit_numbers[1:]))
    write_rows(list_file, rows)

    with pytest.raises(CommandError, match=f"Kit number {kit} appears 2 times"):
        import_list(list_file)
    assert RandomizationSlot.objects.count() == 0


def test_import_of_an_unbalanced_block_loads_nothing(statistician, list_file):
    rows = read_rows(list_file)
    first = rows[0]
    other_arm = next(
        row.arm
        for row in rows
        if (row.site_code, row.stratum, row.block_number)
        == (first.site_code, first.stratum, first.block_number)
        and row.arm != first.arm
    )
    rows[0] = dataclasses.replace(first, arm=other_arm)
    write_rows(list_file, rows)

    block = f"{first.site_code} {first.stratum} block 1"
    with pytest.raises(CommandError, match=f"{block}: unbalanced"):
        import_list(list_file)
    assert RandomizationSlot.objects.count() == 0


def test_import_of_an_unknown_site_loads_nothing(sites, statistician, tmp_path):
    rows = generate_list(site_codes=["SZ01", "XX99"], rows_per_stratum=3, seed=5)
    path = write_rows(tmp_path / "list.csv", rows)

    with pytest.raises(CommandError, match="Unknown site 'XX99'"):
        import_list(path)
    assert RandomizationSlot.objects.count() == 0


def test_import_of_a_malformed_file_loads_nothing(statistician, list_file):
    text = list_file.read_text(encoding="utf-8").splitlines()
    text[3] = text[3].replace(",", ",,", 1)
    list_file.write_text("\n".join(text) + "\n", encoding="utf-8")

    with pytest.raises(CommandError, match="Line 4"):
        import_list(list_file)
    assert RandomizationSlot.objects.count() == 0


def test_import_dry_run_still_reports_errors(statistician, list_file):
    rows = read_rows(list_file)
    rows[1] = dataclasses.replace(rows[1], randomization_number=rows[0].randomization_number)
    write_rows(list_file, rows)

    with pytest.raises(CommandError, match=f"{rows[0].randomization_number} is used by 2 rows"):
        import_list(list_file, dry_run=True)
    assert RandomizationSlot.objects.count() == 0


def test_importing_the_same_file_twice_is_refused(statistician, list_file):
    import_list(list_file)
    count = RandomizationSlot.objects.count()

    with pytest.raises(CommandError) as raised:
        import_list(list_file, list_name="main-v2")
    message = str(raised.value)
    assert "randomization number(s) are already in the database" in message
    assert "kit number(s) are already in the database" in message
    assert RandomizationSlot.objects.count() == count


def test_import_refuses_a_list_name_already_loaded(sites, statistician, tmp_path):
    first = write_rows(
        tmp_path / "a.csv", generate_list(site_codes=["SZ01"], rows_per_stratum=3, seed=1)
    )
    import_list(first)
    # Another site, other numbers and kits, but the same list name.
    rows = [
        dataclasses.replace(
            row,
            randomization_number=f"Q{index:04d}",
            kit_numbers=tuple(str(900_000 + index * 3 + n) for n in range(3)),
        )
        for index, row in enumerate(
            generate_list(site_codes=["GZ02"], rows_per_stratum=3, seed=2), start=1
        )
    ]
    second = write_rows(tmp_path / "b.csv", rows)

    with pytest.raises(CommandError, match="'main-v1' is already loaded"):
        import_list(second)
    import_list(second, list_name="gz02-v1")
    assert RandomizationSlot.objects.filter(list_name="gz02-v1").count() == len(rows)


def test_import_of_a_missing_file(statistician, tmp_path):
    with pytest.raises(CommandError, match="No such file"):
        import_list(tmp_path / "missing.csv")
