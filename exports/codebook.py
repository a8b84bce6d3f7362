"""The data dictionary (codebook) of an export: one row per variable, generated from the same
dataset definitions the writers use, as CSV and as an HTML page."""

from dataclasses import dataclass

from django.template.loader import render_to_string
from django.utils.translation import gettext, pgettext_lazy

from edc import protocol
from exports.dictionary import Dataset
from exports.escape import TEXT_ESCAPE_RULE, XPT_LONG_TEXT_RULE

# A variable's type as the codebook page names it (the CSV codebook keeps the type codes).
TYPE_LABELS = {
    "integer": pgettext_lazy("data type", "integer"),
    "float": pgettext_lazy("data type", "decimal"),
    "text": pgettext_lazy("data type", "text"),
    "date": pgettext_lazy("data type", "date"),
    "datetime": pgettext_lazy("data type", "date and time"),
    "boolean": pgettext_lazy("data type", "yes/no"),
}
COLUMNS = ("dataset", "dataset_label", "variable", "sas_name", "label", "type", "length",
           "decimals", "unit", "values", "form", "visits")


@dataclass(frozen=True)
class Entry:
    dataset: str
    dataset_label: str
    variable: str
    sas_name: str
    label: str
    type: str
    length: int | None
    decimals: int | None
    unit: str
    values: str
    form: str
    visits: str

    @property
    def type_label(self) -> str:
        return str(TYPE_LABELS.get(self.type, self.type))

    def cells(self) -> list:
        return [getattr(self, column) for column in COLUMNS]


def _visits(dataset: Dataset) -> str:
    if dataset.visits == ("log",):
        return gettext("log (entered when the event happens)")
    return " ".join(dataset.visits)


def entries(datasets: list[Dataset]) -> list[Entry]:
    result = []
    for dataset in datasets:
        form = str(protocol.crf(dataset.crf_code).label) if dataset.crf_code else ""
        for v in dataset.variables:
            result.append(Entry(
                dataset=dataset.name, dataset_label=dataset.label, variable=v.name,
                sas_name=v.sas_name, label=v.label, type=v.type, length=v.length,
                decimals=v.digits, unit=v.unit,
                values=" | ".join(f"{code}={label}" for code, label in v.choices),
                form=form, visits=_visits(dataset),
            ))
    return result


def html(datasets: list[Dataset], *, title: str, stylesheet: str = "") -> str:
    """The codebook page: self-contained (inline style) in an export's zip; served by the
    EDC with ``stylesheet``, our own CSS file, since the content security policy refuses
    inline style. It states how long text is split and the escape rule of the formats that
    cannot carry every character."""
    return render_to_string("exports/codebook.html", {
        "title": title, "datasets": datasets, "entries": entries(datasets),
        "trial": protocol.TRIAL_REGISTRY_ID, "stylesheet": stylesheet,
        "escape_rule": gettext(TEXT_ESCAPE_RULE), "xpt_rule": gettext(XPT_LONG_TEXT_RULE),
    })
