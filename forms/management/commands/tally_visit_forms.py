"""Rebuild the form counts of every visit (``forms.tally``) from the forms themselves: after a
database was restored from a copy taken without them, or to check them (``--check``)."""

from django.core.management.base import BaseCommand, CommandError

from forms.tally import tally_rebuild, tally_recount, tally_stored


class Command(BaseCommand):
    help = "Rebuild (or, with --check, compare) the form counts the dashboard reads."

    def add_arguments(self, parser):
        parser.add_argument("--check", action="store_true",
                            help="Only compare the kept counts with a recount; exit 1 if any "
                                 "differs.")

    def handle(self, *args, check=False, **options):
        if check:
            stored, counted = tally_stored(), tally_recount()
            differing = sorted(v for v in stored.keys() | counted.keys()
                               if stored.get(v, (0, 0)) != counted.get(v, (0, 0)))
            if differing:
                raise CommandError(f"{len(differing)} visits counted differently, e.g. visit "
                                   f"ids {differing[:10]}; run without --check to rebuild.")
            self.stdout.write(f"The form counts of {len(counted)} visits match the forms.")
            return
        visits = tally_rebuild()
        self.stdout.write(f"Counted the forms of {visits} visits.")
