"""Generate a synthetic trial for benchmarks and demos (``forms.synthetic``).

    manage.py seed_trial --subjects 600 --seed 1 [--as-of 2026-06-30] [--sites 3]
    manage.py seed_trial --subjects 30 --seed 7 --site-codes SZ01,GZ02,WH03

The same subjects, seed and as-of date give the same trial in a fresh database (the digest
printed at the end says so). The sites (S01 to Sk, or those named) must hold no subjects yet;
other sites, accounts and randomization lists may exist (after ``seed_demo``, say). Outbound
mail is kept in memory meanwhile.
"""

import datetime as dt
from zoneinfo import ZoneInfo

from django.core.management.base import BaseCommand, CommandError
from django.test.utils import override_settings
from django.utils import timezone

from forms import synthetic


def _date(text: str) -> dt.date:
    try:
        return dt.date.fromisoformat(text)
    except ValueError as error:
        raise CommandError(f"--as-of must be a date like 2026-06-30, not {text!r}.") from error


def _codes(text: str) -> list[str]:
    codes = [code.strip() for code in text.split(",") if code.strip()]
    if not codes:
        raise CommandError("--site-codes takes site codes separated by commas, e.g. SZ01,GZ02.")
    return codes


class Command(BaseCommand):
    help = ("Generate a synthetic trial through the service layer: sites, staff, subjects "
            "with complete casebooks up to the as-of date, queries and corrections.")

    def add_arguments(self, parser):
        parser.add_argument("--subjects", type=int, required=True,
                            help="Number of patients screened.")
        parser.add_argument("--seed", type=int, required=True,
                            help="Seed of the random values: same seed, same trial.")
        parser.add_argument("--as-of", type=_date, dest="as_of",
                            help="Date of the snapshot (YYYY-MM-DD, before today); nothing "
                                 "later is entered. Default: yesterday.")
        parser.add_argument("--sites", type=int, default=3,
                            help="Number of sites, S01 to Sk (default 3).")
        parser.add_argument("--site-codes", type=_codes, dest="site_codes",
                            help="Comma-separated codes of the sites instead (existing sites "
                                 "keep their accounts, which then enter the data).")

    def handle(self, *args, subjects, seed, as_of=None, sites=3, site_codes=None, **options):
        today = timezone.localdate(timezone.now(), ZoneInfo(synthetic.SITE_TIME_ZONE))
        as_of = as_of or today - dt.timedelta(days=1)
        if as_of >= today:
            raise CommandError(f"--as-of must be before today ({today}): the trial's data "
                               f"cannot lie in the future.")
        verbosity = options.get("verbosity", 1)
        step = max(1, subjects // 10)

        def progress(done: int) -> None:
            if verbosity > 1 and (done % step == 0 or done == subjects):
                self.stderr.write(f"  {done}/{subjects} subjects")

        with override_settings(EMAIL_BACKEND="django.core.mail.backends.locmem.EmailBackend"):
            try:
                summary = synthetic.trial_generate(subjects=subjects, seed=seed, as_of=as_of,
                                                   site_count=sites, site_codes=site_codes,
                                                   progress=progress)
            except synthetic.SyntheticTrialError as error:
                raise CommandError(str(error)) from error
        codes = site_codes or synthetic.site_codes_for(sites)
        self.stdout.write(self.style.SUCCESS(
            f"Synthetic trial as of {as_of} (seed {seed}, sites {', '.join(codes)})."))
        for line in summary.lines():
            self.stdout.write(f"  {line}")
        self.stdout.write(f"  Entered by: {'; '.join(summary.accounts)}")
        self.stdout.write(f"  Accounts made for the trial have the password "
                          f"{synthetic.PASSWORD}")
