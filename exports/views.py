"""The exports page: a data manager or statistician starts an export, watches its progress and
downloads the zip; the data dictionary as a page."""

import datetime as dt

from django import forms
from django.conf import settings
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.http import FileResponse, Http404, HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.templatetags.static import static
from django.utils.translation import gettext
from django.utils.translation import gettext_lazy as _
from django.views.decorators.http import require_GET, require_http_methods

from edc.audit import audit_event
from edc.models import AuditAction, ExportRun, ExportStatus
from exports import codebook, package
from exports.datasets import may_export
from exports.dictionary import PROFILE_LABELS, Profile, datasets
from exports.services import export_progress
from exports.tasks import export_start


def profiles_for(user) -> list[Profile]:
    return [p for p in Profile if may_export(user, p)]


def may_use_exports(user) -> bool:
    return bool(profiles_for(user))


class ExportForm(forms.Form):
    formats = forms.MultipleChoiceField(
        label=_("Formats"), choices=list(package.FORMATS.items()),
        widget=forms.CheckboxSelectMultiple, initial=["csv"],
        error_messages={"required": _("Choose at least one format.")},
    )
    profile = forms.ChoiceField(label=_("Profile"), widget=forms.RadioSelect)
    as_of = forms.DateTimeField(
        label=_("Data as of (optional)"), required=False,
        widget=forms.DateTimeInput(attrs={"type": "datetime-local"}, format="%Y-%m-%dT%H:%M"),
        help_text=_("Rebuild the data as they stood at this time, from the audit history "
                    "(your time zone). Empty: the data as they are now."),
    )

    language = forms.ChoiceField(
        label=_("Language of labels and dictionary"), choices=settings.LANGUAGES, initial="en",
        widget=forms.RadioSelect, required=False,
        help_text=_("Variable labels, value labels and the data dictionary. English is what "
                    "statisticians and CDISC expect; SAS XPORT files stay English (ASCII)."),
    )

    def __init__(self, *args, user, **kwargs):
        super().__init__(*args, **kwargs)
        allowed = profiles_for(user)
        self.fields["profile"].choices = [(p.value, PROFILE_LABELS[p]) for p in allowed]
        self.fields["profile"].initial = allowed[0].value if allowed else None

    def clean_as_of(self) -> dt.datetime | None:
        value = self.cleaned_data["as_of"]
        if (error := package.as_of_error(value)) is not None:
            raise forms.ValidationError(error)
        return value


def _allowed(request: HttpRequest) -> None:
    if not may_use_exports(request.user):
        raise PermissionDenied(gettext("Your role does not allow exporting data."))


@login_required
@require_http_methods(["GET", "POST"])
def exports(request: HttpRequest) -> HttpResponse:
    _allowed(request)
    form = ExportForm(request.POST or None, user=request.user)
    status = 200
    if request.method == "POST":
        if form.is_valid():
            run = export_start(user=request.user, formats=form.cleaned_data["formats"],
                               profile=Profile(form.cleaned_data["profile"]),
                               as_of=form.cleaned_data["as_of"],
                               language=form.cleaned_data["language"] or "en")
            return redirect("exports:detail", pk=run.pk)
        status = 400
    runs = ExportRun.objects.filter(requested_by=request.user).readable()[:20]
    return render(request, "exports/exports.html", {
        "form": form, "runs": runs, "formats": package.FORMATS,
    }, status=status)


def _own_run(request: HttpRequest, pk: int) -> ExportRun:
    run = get_object_or_404(ExportRun.objects.readable(), pk=pk, requested_by=request.user)
    if run.profile not in Profile.__members__.values() or not may_export(
            request.user, Profile(run.profile)):
        raise PermissionDenied(gettext("Your role does not allow this export."))
    return run


@login_required
@require_GET
def detail(request: HttpRequest, pk: int) -> HttpResponse:
    _allowed(request)
    run = _own_run(request, pk)
    done, total, label = export_progress(run)
    return render(request, "exports/detail.html", {
        "run": run, "done": done, "total": total, "label": label,
        "percent": round(100 * done / total) if total else 0,
        "formats": [package.FORMATS.get(f, f) for f in run.formats],
        "profile_label": PROFILE_LABELS[Profile(run.profile)],
    })


@login_required
@require_GET
def download(request: HttpRequest, pk: int) -> FileResponse:
    _allowed(request)
    run = _own_run(request, pk)
    path = package.export_path(run.pk)
    if run.status != ExportStatus.DONE or not path.exists():
        raise Http404(gettext("This export has no file to download."))
    audit_event(action=AuditAction.EXPORT_DOWNLOADED, user=request.user, obj=run,
                detail={"file": run.file_name, "sha256": run.sha256, "profile": run.profile})
    return FileResponse(open(path, "rb"), as_attachment=True,
                        filename=f"{package._stem()}-export-{run.pk}.zip",
                        content_type="application/zip")


@login_required
@require_GET
def dictionary(request: HttpRequest) -> HttpResponse:
    _allowed(request)
    profile = profiles_for(request.user)[0]
    return HttpResponse(codebook.html(datasets(profile), title=gettext("Data dictionary"),
                                      stylesheet=static("css/edc.css")))
