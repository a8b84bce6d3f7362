"""How many of the forms the protocol expects at a visit are saved, complete and in progress:
one row per visit that has any, so that the dashboard counts the forms of the trial from the
visits (about a fifth as many rows as forms) instead of reading every form table.

Derived data, not clinical data: nobody enters it, and every change to it is the consequence
of a form save that has its own history row, so it keeps no history. ``forms.tally`` keeps it
inside the transaction of that save (``crf_save``); ``manage.py tally_visit_forms`` rebuilds
it from the forms, and a test checks it equals that recount after every kind of change."""

from django.db import models
from django.utils.translation import gettext_lazy as _

from visits.models import Visit


class VisitFormTally(models.Model):
    # Removed with its visit: a count must never be what keeps a visit from being deleted.
    visit = models.OneToOneField(Visit, verbose_name=_("visit"), primary_key=True,
                                 on_delete=models.CASCADE, related_name="form_tally")
    # Plain integers, no check that they stay at or above zero: a save of clinical data is
    # never refused because of a count derived from it (the recount test guards them).
    complete = models.IntegerField(_("forms complete"), default=0)
    in_progress = models.IntegerField(_("forms in progress"), default=0)

    class Meta:
        verbose_name = _("form count of a visit")
        verbose_name_plural = _("form counts of visits")

    def __str__(self) -> str:
        return f"{self.visit_id}: {self.complete} complete, {self.in_progress} in progress"
