"""Generate the randomization list, write it as CSV and optionally load it.

    python manage.py randomization_generate --seed S --rows-per-stratum N [--sites SZ01,GZ02]
        --output LIST.csv [--force] [--load --user USERNAME --list-name NAME]

The same seed, sites and row count always give a byte-identical file, so the statistician can
regenerate the list to verify it. The seed is as secret as the list and is never printed. The
file (which holds the arms) is created readable by its owner only; what is printed shows counts
per arm, never the arm of a row.
"""

import hashlib
import os
from pathlib import Path

from django.core.management.base import BaseCommand, CommandError
from django.db import transaction

from edc.models import Site
from visits.management.commands.randomization_import import (
    check_list_name,
    database_conflicts,
    fail,
    list_loader,
    load_rows,
)
from visits.randomization import format_report, generate_list, validate_list, write_csv


def site_codes_argument(value: str) -> list[str]:
    """``"SZ01, GZ02"`` as ``["SZ01", "GZ02"]``."""
    return [code.strip() for code in value.split(",") if code.strip()]


def write_new_file(path: Path, rows, *, force: bool) -> None:
    """Write the CSV, readable by the owner only; refuse to replace a file unless ``force``."""
    flags = os.O_WRONLY | os.O_CREAT | (os.O_TRUNC if force else os.O_EXCL)
    try:
        descriptor = os.open(path, flags, 0o600)
    except FileExistsError as error:
        raise CommandError(f"{path} already exists; use --force to overwrite it.") from error
    except OSError as error:
        raise CommandError(f"Cannot write {path}: {error}") from error
    with os.fdopen(descriptor, "w", encoding="utf-8", newline="") as file:
        write_csv(rows, file)


class Command(BaseCommand):
    help = (
        "Generate the stratified permuted-block randomization list from a seed, write it as CSV "
        "and, with --load, load it into the database (unblinded statistician only)."
    )

    def add_arguments(self, parser):
        parser.add_argument("--seed", type=int, required=True, help="Seed (keep it secret).")
        parser.add_argument(
            "--rows-per-stratum",
            type=int,
            required=True,
            help="Rows per site and NIHSS stratum (rounded up to whole blocks).",
        )
        parser.add_argument(
            "--sites",
            help="Comma-separated site codes, e.g. SZ01,GZ02 (default: all active sites).",
        )
        parser.add_argument("--output", type=Path, required=True, help="CSV file to create.")
        parser.add_argument(
            "--force", action="store_true", help="Overwrite the output file if it exists."
        )
        parser.add_argument(
            "--load", action="store_true", help="Also load the list into the database."
        )
        parser.add_argument("--user", help="With --load: the unblinded statistician's username.")
        parser.add_argument("--list-name", help="With --load: name recorded on every row.")

    def handle(self, *args, seed, rows_per_stratum, sites, output: Path, force, load, **options):
        # call_command passes keyword options through unconverted.
        seed, rows_per_stratum, output = int(seed), int(rows_per_stratum), Path(output)
        username, list_name = options["user"], options["list_name"]
        loader = None
        if load:
            if not username or not list_name:
                raise CommandError("--load needs --user and --list-name.")
            list_name = check_list_name(list_name)
            loader = list_loader(username)
        elif username or list_name:
            raise CommandError("--user and --list-name are only used with --load.")
        if output.exists() and not force:
            raise CommandError(f"{output} already exists; use --force to overwrite it.")

        site_codes = site_codes_argument(sites) if sites else self._active_site_codes()
        known = set(Site.objects.filter(code__in=site_codes).values_list("code", flat=True))
        unknown = [code for code in site_codes if code not in known]
        if unknown:
            raise CommandError(f"Unknown site code(s): {', '.join(unknown)}.")
        try:
            rows = generate_list(
                site_codes=site_codes, rows_per_stratum=rows_per_stratum, seed=seed
            )
        except (TypeError, ValueError) as error:
            raise CommandError(str(error)) from error
        report = validate_list(rows, known_site_codes=site_codes)
        self.stdout.write(format_report(report))
        if not report.ok:
            raise fail(report.errors)

        # Load first and write the file inside the same transaction: if either fails, neither
        # the rows nor the file remain.
        with transaction.atomic():
            loaded = None
            if loader is not None:
                conflicts = database_conflicts(rows, list_name)
                if conflicts:
                    raise fail(conflicts)
                loaded = load_rows(rows, list_name=list_name, user=loader)
            write_new_file(output, rows, force=force)

        digest = hashlib.sha256(output.read_bytes()).hexdigest()
        self.stdout.write(f"\nWrote {len(rows)} rows to {output}")
        self.stdout.write(f"SHA-256: {digest}")
        if loaded is not None:
            self.stdout.write(
                self.style.SUCCESS(
                    f"Loaded {loaded} rows as list {list_name!r} (by {loader.username})."
                )
            )

    @staticmethod
    def _active_site_codes() -> list[str]:
        active = Site.objects.filter(is_active=True).order_by("code")
        codes = list(active.values_list("code", flat=True))
        if not codes:
            raise CommandError("There are no active sites; add sites or pass --sites.")
        return codes
