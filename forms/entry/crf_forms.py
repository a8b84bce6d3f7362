"""Data-entry forms built from the CRF models: scales as labelled radio buttons, dates with the
browser's date pickers, a missing-data reason beside every required item."""

from django import forms
from django.db import models
from django.forms import BoundField
from django.utils.translation import gettext_lazy as _

from edc import bounds
from forms.models import CRF, Missing

MISSING_PREFIX = "missing__"
DATETIME_FORMAT = "%Y-%m-%dT%H:%M"


def _widget_for(field: models.Field, model: type[CRF]):
    if field.choices and not isinstance(field, models.BooleanField):
        return forms.RadioSelect
    earliest = model.earliest_date(field.name)
    if isinstance(field, models.DateTimeField):
        return forms.DateTimeInput(attrs={"type": "datetime-local",
                                          "min": f"{earliest.isoformat()}T00:00"},
                                   format=DATETIME_FORMAT)
    if isinstance(field, models.DateField):
        return forms.DateInput(attrs={"type": "date", "min": earliest.isoformat()},
                               format="%Y-%m-%d")
    if isinstance(field, models.BooleanField) and field.null:
        return forms.RadioSelect(choices=[(True, _("Yes")), (False, _("No"))])
    if isinstance(field, models.TextField):
        return forms.Textarea(attrs={"rows": 3})
    return None


class ItemField(BoundField):
    """An item whose unit (mmHg, /min) is read out with its input, after its error and help
    text, which Django ties to the input itself."""

    @property
    def aria_describedby(self) -> str:
        described = [super().aria_describedby]
        if self.form.model.units.get(self.name):
            described.append(f"unit_{self.html_name}")
        return " ".join(filter(None, described))


class CRFEntryForm(forms.Form):
    """The entered items of one CRF, the missing-data marks, and the save controls."""

    version = forms.IntegerField(widget=forms.HiddenInput, min_value=0)
    not_done_reason = forms.ChoiceField(
        label=_("Whole form not done"), required=False,
        choices=[("", _("— the form was done —")), *Missing.choices],
    )
    reason = forms.CharField(
        label=_("Reason for change"), required=False, max_length=bounds.REASON,
        widget=forms.TextInput(attrs={"autocomplete": "off"}),
        help_text=_("Required when changing a form that was complete."),
    )

    model: type[CRF]
    bound_field_class = ItemField

    def __init__(self, *args, subject=None, **kwargs):
        super().__init__(*args, **kwargs)
        for field in self.fields.values():
            if isinstance(field, forms.ModelChoiceField):
                # Links to other records (an adverse event) offer this subject's only.
                field.queryset = field.queryset.filter(subject=subject)
            if isinstance(field.widget, forms.RadioSelect) and hasattr(field, "choices"):
                field.choices = [c for c in field.choices if c[0] not in ("", None)]
            if isinstance(field, forms.DecimalField | forms.IntegerField):
                field.widget.attrs.setdefault("inputmode", "decimal")

    def clean(self):
        """A date before its plausible span is refused here, before any arithmetic on it
        (a date-time in year 1 cannot even be converted to UTC)."""
        data = super().clean()
        for name in self.model.entry_items():
            field = self.model._meta.get_field(name)
            value = data.get(name)
            if isinstance(field, models.DateField) and value is not None:
                message = bounds.date_span_error(value, earliest=self.model.earliest_date(name))
                if message:
                    self.add_error(name, message)
        return data

    # Study day of each saved date item (set by the view when the subject has a Day 1).
    study_days: dict[str, int] = {}

    def item_rows(self):
        """(bound field, missing-reason field or None, unit, study day or None) per item."""
        for name in self.model.entry_items():
            missing = self[MISSING_PREFIX + name] if name in self.model.required_items else None
            yield self[name], missing, self.model.units.get(name, ""), self.study_days.get(name)

    def item_values(self) -> dict:
        return {name: self.cleaned_data.get(name) for name in self.model.entry_items()}

    def missing_values(self) -> dict[str, str]:
        return {
            name: self.cleaned_data.get(MISSING_PREFIX + name)
            for name in self.model.required_items
            if self.cleaned_data.get(MISSING_PREFIX + name)
        }


def crf_form_class(model: type[CRF]) -> type[CRFEntryForm]:
    items = model.entry_items()
    widgets = {name: w for name in items
               if (w := _widget_for(model._meta.get_field(name), model))}
    fields = forms.fields_for_model(model, fields=items, widgets=widgets)
    for name in items:
        fields[name].required = False
        model_field = model._meta.get_field(name)
        # Validators declared on the item (a positive dose, a MedDRA code) refuse the input
        # in the form too, beside the field, before the service sees it.
        fields[name].validators = [*fields[name].validators, *model_field._validators]
        if isinstance(model_field, models.BooleanField) and not model_field.null:
            fields[name] = forms.BooleanField(label=fields[name].label, required=False)
        elif isinstance(model_field, models.BooleanField):
            fields[name] = forms.TypedChoiceField(
                label=fields[name].label, required=False, widget=forms.RadioSelect,
                choices=[("True", _("Yes")), ("False", _("No"))],
                coerce=lambda v: {"True": True, "False": False}.get(v), empty_value=None,
            )
    for name in model.required_items:
        fields[MISSING_PREFIX + name] = forms.ChoiceField(
            label=_("No value because"), required=False,
            choices=[("", "—"), *Missing.choices],
        )
    return type(f"{model.__name__}EntryForm", (CRFEntryForm,), {**fields, "model": model})


def initial_for(crf: CRF) -> dict:
    initial = {name: getattr(crf, name) for name in crf.entry_items()}
    for name, value in list(initial.items()):
        # A yes/no radio (nullable boolean) is chosen by "True"/"False". A checkbox needs the
        # bool: given "False" it shows ticked with value="False", which saves False either way.
        if isinstance(value, bool) and crf._meta.get_field(name).null:
            initial[name] = str(value)
    initial |= {MISSING_PREFIX + name: why for name, why in (crf.missing_items or {}).items()}
    initial |= {"version": crf.version, "not_done_reason": crf.not_done_reason}
    return initial
