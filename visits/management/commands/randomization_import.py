"""Load a randomization list CSV (as written by ``randomization_generate``) into the database.

    python manage.py randomization_import LIST.csv --user USERNAME --list-name NAME [--dry-run]

The file is read and checked against the protocol (``visits.randomization.validate_list``) and
against what the database already holds (randomization numbers, kit numbers, list names and
site+stratum sequence positions must all be new). Any error loads nothing. Only the unblinded
statistician loads lists. Nothing printed names the arm of an individual row; the report shows
counts per arm only.
"""

from collections.abc import Sequence
from pathlib import Path

from django.core.exceptions import PermissionDenied, ValidationError
from django.core.management.base import BaseCommand, CommandError
from django.db import IntegrityError, transaction

from edc.models import Site, User
from edc.roles import Action, Role, can
from visits.models import RandomizationSlot
from visits.randomization import ListRow, format_report, read_csv, validate_list
from visits.services import randomization_list_import

LIST_NAME_MAX_LENGTH = RandomizationSlot._meta.get_field("list_name").max_length
_MAX_REFERENCES = 5


def references(items: Sequence[str]) -> str:
    """``"a, b, c, d, e and 3 more"``."""
    shown = ", ".join(items[:_MAX_REFERENCES])
    more = len(items) - _MAX_REFERENCES
    return f"{shown} and {more} more" if more > 0 else shown


def check_list_name(list_name: str) -> str:
    list_name = list_name.strip()
    if not list_name:
        raise CommandError("--list-name must not be empty.")
    if len(list_name) > LIST_NAME_MAX_LENGTH:
        raise CommandError(f"--list-name is longer than {LIST_NAME_MAX_LENGTH} characters.")
    return list_name


def list_loader(username: str) -> User:
    """The user who loads the list; CommandError unless an active unblinded statistician."""
    user = User.objects.filter(username=username).first()
    if user is None:
        raise CommandError(f"No user named {username!r}.")
    if not can(user, Action.LOAD_RANDOMIZATION_LIST):
        state = "" if user.is_active else " and inactive"
        raise CommandError(
            f"User {username!r} (role {user.role or 'none'!r}{state}) may not load randomization "
            f"lists: only an active {Role.UNBLINDED_STATISTICIAN.label.lower()} "
            f"({Role.UNBLINDED_STATISTICIAN.value!r}) may."
        )
    return user


def database_conflicts(rows: Sequence[ListRow], list_name: str) -> list[str]:
    """Why ``rows`` cannot be added to the randomization list already in the database."""
    errors = []
    in_list = RandomizationSlot.objects.filter(list_name=list_name).count()
    if in_list:
        errors.append(
            f"A list named {list_name!r} is already loaded ({in_list} rows); "
            "choose another --list-name."
        )
    existing = RandomizationSlot.objects.values_list(
        "randomization_number", "kit_1", "kit_2", "kit_3", "site__code", "stratum", "sequence"
    )
    numbers_in_db: set[str] = set()
    kits_in_db: set[str] = set()
    positions_in_db: set[tuple[str, str, int]] = set()
    for number, kit_1, kit_2, kit_3, site_code, stratum, sequence in existing:
        numbers_in_db.add(number)
        kits_in_db.update((kit_1, kit_2, kit_3))
        positions_in_db.add((site_code, stratum, sequence))

    numbers = [
        row.randomization_number for row in rows if row.randomization_number in numbers_in_db
    ]
    if numbers:
        errors.append(
            f"{len(numbers)} randomization number(s) are already in the database: "
            f"{references(numbers)}."
        )
    kits = [kit for row in rows for kit in row.kit_numbers if kit in kits_in_db]
    if kits:
        errors.append(f"{len(kits)} kit number(s) are already in the database: {references(kits)}.")
    taken = [
        f"{row.site_code} {row.stratum} #{row.sequence}"
        for row in rows
        if (row.site_code, row.stratum, row.sequence) in positions_in_db
    ]
    if taken:
        errors.append(
            f"{len(taken)} site/stratum sequence position(s) are already filled in the database: "
            f"{references(taken)}."
        )
    return errors


def load_rows(rows: Sequence[ListRow], *, list_name: str, user: User) -> int:
    """``randomization_list_import`` with its failures turned into CommandError."""
    try:
        return randomization_list_import(rows=rows, list_name=list_name, user=user)
    except PermissionDenied as error:
        raise CommandError(str(error)) from error
    except ValidationError as error:
        raise CommandError(
            f"Nothing loaded; a row was refused: {'; '.join(error.messages)}"
        ) from error
    except IntegrityError as error:
        raise CommandError(f"Nothing loaded; the database refused a row: {error}") from error


def fail(errors: Sequence[str]) -> CommandError:
    return CommandError(
        f"Randomization list not loaded, {len(errors)} error(s):\n"
        + "\n".join(f"  - {message}" for message in errors)
    )


class Command(BaseCommand):
    help = (
        "Check a randomization list CSV and load it into the database (unblinded statistician "
        "only). Any error loads nothing."
    )

    def add_arguments(self, parser):
        parser.add_argument(
            "file", type=Path, help="The CSV file written by randomization_generate."
        )
        parser.add_argument(
            "--user", required=True, help="Username of the unblinded statistician loading it."
        )
        parser.add_argument(
            "--list-name", required=True, help="Name recorded on every row, e.g. 'main-v1'."
        )
        parser.add_argument(
            "--dry-run", action="store_true", help="Check and report only; load nothing."
        )

    def handle(self, *args, file: Path, user: str, list_name: str, dry_run: bool, **options):
        file = Path(file)
        list_name = check_list_name(list_name)
        loader = list_loader(user)
        try:
            with file.open(encoding="utf-8", newline="") as handle:
                rows, read_errors = read_csv(handle)
        except FileNotFoundError as error:
            raise CommandError(f"No such file: {file}") from error
        except (OSError, UnicodeDecodeError) as error:
            raise CommandError(f"Cannot read {file}: {error}") from error

        with transaction.atomic():
            site_codes = set(Site.objects.values_list("code", flat=True))
            report = validate_list(rows, known_site_codes=site_codes)
            errors = [*read_errors, *report.errors, *database_conflicts(rows, list_name)]
            self.stdout.write(format_report(report))
            if read_errors:
                self.stdout.write("\nUnreadable lines:")
                self.stdout.write("\n".join(f"  - {message}" for message in read_errors))
            if errors:
                raise fail(errors)
            if dry_run:
                self.stdout.write(
                    f"\nDry run: {len(rows)} rows would be loaded as list {list_name!r}. "
                    "Nothing was loaded."
                )
                return
            loaded = load_rows(rows, list_name=list_name, user=loader)
        self.stdout.write(
            self.style.SUCCESS(
                f"\nLoaded {loaded} rows as list {list_name!r} (by {loader.username})."
            )
        )
