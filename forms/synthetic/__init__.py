"""A synthetic trial for benchmarks and demos (``manage.py seed_trial``).

Complete casebooks for N subjects over several sites, entered the way site staff, monitors and
data managers enter them: every write goes through the service layer (``subject_screen``,
``crf_save``, ``subject_randomize``, ``query_answer``, ...), so the history rows, audit events,
edit checks and system queries are the real ones; no clinical record is written around the
services. Sites, accounts and the sites' laboratory ranges are configuration, saved (with their
history) the way ``seed_demo`` and the administrators save them.

What the trial holds: a screening log with declined consents and screen failures (for every
reason the data show), randomized subjects followed visit by visit up to the as-of date, with
plausible values inside the protocol's ranges and some outside the soft ranges (so the edit
checks raise queries), missed and out-of-window visits with their protocol deviations, adverse
events (some serious, a few fatal, with the death report), concomitant medications, early
terminations, completed subjects, corrections of completed forms with their reasons, and
queries in every state (open, answered, re-queried, closed, cancelled).

Reproducible: every value comes from ``random.Random`` seeded from the seed (one generator
for the trial plan, one per subject), and the clock is set to the moment of each action with
time-machine (a dev dependency), so the same subjects, seed and as-of date give the same trial
whatever day it is generated (:func:`trial_digest` fingerprints it). Each subject is entered in
one transaction.

The package, by concern: ``plan`` (the trial's parameters and who is screened when, with what
fate), ``values`` (clinical values from a random generator), ``clock`` (the clock, the staff,
what the subjects share, a subject's transaction), ``run`` (``SubjectRun``: a subject's queue of
actions, its writes and queries), with its actions in ``screening``, ``visits`` and ``events``,
``configuration`` (sites, accounts, laboratory ranges, the randomization list), ``generate``
(``trial_generate``) and ``summary`` (what was generated, ``trial_digest``).
"""

from forms.synthetic.clock import SyntheticTrialError
from forms.synthetic.generate import site_codes_for, trial_generate
from forms.synthetic.plan import PASSWORD, SITE_TIME_ZONE, SubjectPlan, trial_plan
from forms.synthetic.run import SubjectRun
from forms.synthetic.summary import TrialSummary, trial_digest, trial_summary

__all__ = [
    "PASSWORD", "SITE_TIME_ZONE", "SubjectPlan", "SubjectRun", "SyntheticTrialError",
    "TrialSummary", "site_codes_for", "trial_digest", "trial_generate", "trial_plan",
    "trial_summary",
]
