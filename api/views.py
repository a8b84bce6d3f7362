"""``POST /api/``: REDCap's API, form-encoded (``token``, ``content``, ``format``,
``returnFormat``, ``type=flat``), so the clients people already have (PyCap, REDCapR,
redcapAPI) work unchanged.

The token stands for its user: the same role and sites as on the web pages, always blinded.
Every call leaves an audit event (user, token name, content, records and rows); a refused
token too (``api.tokens``). Errors are ``{"error": "..."}`` (or REDCap's CSV and XML shapes)
with a 4xx status, and nothing is written on any error.
"""

import datetime as dt
import json
import re
from importlib.metadata import PackageNotFoundError, version

from django.conf import settings
from django.core.exceptions import PermissionDenied, RequestDataTooBig
from django.db import transaction
from django.http import HttpRequest, HttpResponse
from django.utils import timezone
from django.views.decorators.csrf import csrf_exempt

from api import formats, redcap
from api.imports import records_import
from api.records import RecordQuery, columns, rows
from api.tokens import Caller, TokenRefused, token_authenticate
from edc import protocol
from edc.audit import audit_event
from edc.models import AuditAction
from edc.roles import Action, can
from edc.sources import Source, audit_source


class ApiError(Exception):
    def __init__(self, message: str, status: int = 400):
        super().__init__(message)
        self.status = status


def _list(post, name: str) -> tuple[str, ...]:
    """A list parameter, as PyCap sends it (``records[0]``, ``records[1]``) or comma-separated
    (``records=a,b``)."""
    values = list(post.getlist(name)) + list(post.getlist(f"{name}[]"))
    indexed = sorted((int(m.group(1)), key) for key in post
                     if (m := re.fullmatch(rf"{re.escape(name)}\[(\d+)\]", key)))
    values += [post[key] for _i, key in indexed]
    result = []
    for value in values:
        result += [v.strip() for v in value.split(",") if v.strip()]
    if len(result) > 10_000 or any(len(v) > 100 for v in result):
        raise ApiError(f"The parameter '{name}' is too long.")
    return tuple(result)


def _datetime(post, name: str) -> dt.datetime | None:
    text = post.get(name, "").strip()
    if not text:
        return None
    for pattern in ("%Y-%m-%d %H:%M:%S", "%Y-%m-%d %H:%M", "%Y-%m-%d"):
        try:
            parsed = dt.datetime.strptime(text, pattern)  # noqa: DTZ007 (made aware below)
        except ValueError:
            continue
        return timezone.make_aware(parsed, dt.UTC)
    raise ApiError(f"The value of '{name}' is not a date and time (YYYY-MM-DD HH:MM:SS).")


def _format(post, name: str = "format") -> str:
    fmt = (post.get(name) or "json").strip().lower()
    if fmt not in formats.FORMATS:
        raise ApiError(f"The value of the parameter '{name}' is not valid (json, csv or xml).")
    return fmt


def _version() -> str:
    try:
        return version("edc")
    except PackageNotFoundError:
        return "0.1.0"


def _may_read_records(caller: Caller) -> bool:
    """As the web pages: whoever sees subjects (at their sites) or exports blinded data."""
    return can(caller.user, Action.VIEW_SUBJECTS) or can(caller.user, Action.EXPORT_BLINDED)


def _may_write_records(caller: Caller) -> bool:
    return can(caller.user, Action.ENTER_DATA) or can(caller.user, Action.IMPORT_DATA)


def _check_names(names, known, what: str) -> None:
    unknown = [n for n in names if n not in known]
    if unknown:
        raise ApiError(f"The following values of the parameter '{what}' are not valid: "
                       + ", ".join(unknown[:20]))


# --- Contents -----------------------------------------------------------------------------


def _project() -> dict:
    return {
        "project_id": 1, "project_title": settings.TRIAL_NAME,
        "creation_time": protocol.TRIAL_START.isoformat() + " 00:00:00",
        "production_time": "", "in_production": 1, "project_language": "English",
        "purpose": 2, "purpose_other": protocol.TRIAL_REGISTRY_ID,
        "project_notes": f"{protocol.TRIAL_REGISTRY_ID}: trial EDC, REDCap-compatible API",
        "custom_record_label": "", "secondary_unique_field": "subject_id",
        "is_longitudinal": 1, "has_repeating_instruments_or_events": 1,
        "surveys_enabled": 0, "scheduling_enabled": 0, "record_autonumbering_enabled": 0,
        "randomization_enabled": 0, "ddp_enabled": 0, "project_irb_number": "",
        "project_grant_number": "", "project_pi_firstname": "", "project_pi_lastname": "",
        "display_today_now_button": 1, "missing_data_codes": "",
        "external_modules": "", "bypass_branching_erase_field_prompt": 0,
    }


def _events() -> list[dict]:
    return [{"event_name": e.label, "arm_num": redcap.ARM_NUMBER,
             "unique_event_name": e.unique_name, "custom_event_label": "",
             "event_id": i, "days_offset": e.day if e.day is not None else "",
             "offset_min": e.window_before, "offset_max": e.window_after}
            for i, e in enumerate(redcap.events(), start=1)]


def _metadata_content(caller, post, fmt):
    fields, forms = _list(post, "fields"), _list(post, "forms")
    _check_names(fields, redcap.fields_by_name(), "fields")
    _check_names(forms, {i.name for i in redcap.instruments()}, "forms")
    found = redcap.metadata(fields=list(fields), forms=list(forms))
    return formats.rows_response(found, list(redcap.METADATA_COLUMNS), fmt), {"rows": len(found)}


def _simple(build, cols):
    def content(caller, post, fmt):
        found = build(post)
        return formats.rows_response(found, cols, fmt), {"rows": len(found)}
    return content


def _field_names(post):
    field = post.get("field", "").strip() or None
    if field is not None:
        _check_names([field], {r["original_field_name"] for r in redcap.export_field_names()},
                     "field")
    return redcap.export_field_names(field)


def _arms_filter(post):
    arms = _list(post, "arms")
    _check_names(arms, {str(redcap.ARM_NUMBER)}, "arms")
    return arms


def _events_content(post):
    _arms_filter(post)
    return _events()


def _mapping(post):
    _arms_filter(post)
    return [{"arm_num": redcap.ARM_NUMBER, "unique_event_name": e, "form": f}
            for e, f in redcap.form_event_mapping()]


def _record_export(caller: Caller, post, fmt):
    if not _may_read_records(caller):
        raise ApiError("Your role does not allow reading records.", 403)
    record_type = (post.get("type") or "flat").strip()
    if record_type != "flat":
        raise ApiError("Only type=flat is supported.")
    raw_or_label = (post.get("rawOrLabel") or "raw").strip()
    if raw_or_label not in ("raw", "label"):
        raise ApiError("The value of the parameter 'rawOrLabel' is not valid (raw or label).")
    query = RecordQuery(records=_list(post, "records"), fields=_list(post, "fields"),
                        forms=_list(post, "forms"), events=_list(post, "events"),
                        labels=raw_or_label == "label", begin=_datetime(post, "dateRangeBegin"),
                        end=_datetime(post, "dateRangeEnd"))
    known_fields = set(redcap.fields_by_name()) | {
        i.complete_field for i in redcap.instruments()}
    _check_names(query.fields, known_fields, "fields")
    _check_names(query.forms, {i.name for i in redcap.instruments()}, "forms")
    _check_names(query.events, {e.unique_name for e in redcap.events()}, "events")
    counted = {"rows": 0}

    def counting():
        complete = False
        try:
            for row in rows(caller.user, query):
                counted["rows"] += 1
                yield row
            complete = True
        finally:
            # The call's audit event names how many rows went out, once they have (and how
            # many, if the client stopped reading before the end).
            with audit_source(Source.API):
                _audit(caller, "record", {
                    "action": "export", "format": fmt, "rows": counted["rows"],
                    "complete": complete, "records": list(query.records)[:100],
                    "fields": list(query.fields)[:100], "forms": list(query.forms),
                    "events": list(query.events)})

    response = formats.rows_response(counting(), columns(query), fmt, stream=True)
    return response, None


def _record_import(caller: Caller, post, fmt):
    if not _may_write_records(caller):
        raise ApiError("Your role does not allow writing records.", 403)
    data_format = _format(post)
    if data_format == "xml":
        raise ApiError("Records are imported as json or csv.")
    if (post.get("type") or "flat").strip() != "flat":
        raise ApiError("Only type=flat is supported.")
    overwrite = (post.get("overwriteBehavior") or "normal").strip()
    if overwrite not in ("normal", "overwrite"):
        raise ApiError("The value of 'overwriteBehavior' is not valid (normal or overwrite).")
    return_content = (post.get("returnContent") or "count").strip()
    if return_content not in ("count", "ids", "nothing"):
        raise ApiError("The value of 'returnContent' is not valid (count, ids or nothing).")
    if (post.get("dateFormat") or "YMD").strip() != "YMD":
        raise ApiError("Dates are imported as YYYY-MM-DD (dateFormat=YMD).")
    if str(post.get("forceAutoNumber", "")).strip().lower() in ("true", "1"):
        raise ApiError("Records are not numbered by import: a patient is screened in the EDC.")
    data = post.get("data", "")
    if not data.strip():
        raise ApiError("No data were given (the parameter 'data').")
    if len(data.encode()) > settings.API_IMPORT_MAX_BYTES:
        raise ApiError(f"The data exceed {settings.API_IMPORT_MAX_BYTES} bytes.", 413)
    try:
        parsed = formats.parse_rows(data, data_format)
    except ValueError as error:
        raise ApiError(str(error)) from None
    if not parsed:
        raise ApiError("The data hold no rows.")
    if len(parsed) > settings.API_IMPORT_MAX_ROWS:
        raise ApiError(f"At most {settings.API_IMPORT_MAX_ROWS} rows per import.", 413)
    reason = post.get("reason", "")
    report = records_import(user=caller.user, rows=parsed, overwrite=overwrite == "overwrite",
                            reason=reason)
    counts = report.counts()
    if not report.ok:
        raise ApiError(report.error_text())
    detail = {"action": "import", "rows": len(parsed), "records": report.records[:100],
              "forms_written": counts["create"] + counts["update"],
              "forms_unchanged": counts["unchanged"]}
    return_fmt = _format(post, "returnFormat") if post.get("returnFormat") else data_format
    if return_content == "ids":
        body = [{"id": r} for r in report.records]
        if return_fmt == "json":
            response = HttpResponse(json.dumps(report.records),
                                    content_type=formats.CONTENT_TYPES["json"])
        else:
            response = formats.rows_response(body, ["id"], return_fmt)
    elif return_content == "nothing":
        response = HttpResponse(status=200)
    else:
        response = formats.value_response({"count": len(report.records)}, return_fmt)
    return response, detail


def _record(caller, post, fmt):
    if (post.get("action") or "export").strip() == "import" or "data" in post:
        return _record_import(caller, post, fmt)
    if (post.get("action") or "export").strip() != "export":
        raise ApiError("Records are exported and imported; nothing is deleted through the API.")
    return _record_export(caller, post, fmt)


CONTENTS = {
    "version": lambda caller, post, fmt: (HttpResponse(_version(), content_type="text/plain"),
                                          {}),
    "project": lambda caller, post, fmt: (formats.value_response(_project(), fmt), {}),
    "metadata": _metadata_content,
    "instrument": _simple(lambda post: [{"instrument_name": i.name,
                                         "instrument_label": i.label}
                                        for i in redcap.instruments()],
                          ["instrument_name", "instrument_label"]),
    "event": _simple(_events_content, ["event_name", "arm_num", "unique_event_name",
                                       "custom_event_label", "event_id", "days_offset",
                                       "offset_min", "offset_max"]),
    "arm": _simple(lambda post: (_arms_filter(post),
                                 [{"arm_num": redcap.ARM_NUMBER, "name": redcap.ARM_NAME}])[1],
                   ["arm_num", "name"]),
    "formEventMapping": _simple(_mapping, ["arm_num", "unique_event_name", "form"]),
    "exportFieldNames": _simple(_field_names,
                                ["original_field_name", "choice_value", "export_field_name"]),
    "repeatingFormsEvents": _simple(lambda post: redcap.repeating_forms_events(),
                                    ["event_name", "form_name", "custom_form_label"]),
    "record": _record,
}


def _audit(caller: Caller, content: str, detail: dict) -> None:
    audit_event(action=AuditAction.API_CALL, user=caller.user, obj=caller.token,
                detail={"token": caller.token.name, "content": content, **detail})


@csrf_exempt
@transaction.non_atomic_requests
def endpoint(request: HttpRequest) -> HttpResponse:
    """The one API address. Refused tokens are counted and audited outside any transaction;
    a write runs in its own (``api.imports``)."""
    with audit_source(Source.API):
        return _endpoint(request)


def _endpoint(request: HttpRequest) -> HttpResponse:
    if request.method != "POST":
        return formats.error_response("The API takes POST requests only.", 405)
    try:
        post = request.POST
    except RequestDataTooBig:
        return formats.error_response("The request is too large.", 413)
    error_format = (post.get("returnFormat") or post.get("format") or "json").strip().lower()
    error_format = error_format if error_format in formats.FORMATS else "json"
    if not post.get("token"):
        return formats.error_response("No API token was given.", 401, error_format)
    try:
        caller = token_authenticate(request, post.get("token", ""))
    except TokenRefused as refusal:
        return formats.error_response(str(refusal), refusal.status, error_format)
    content = (post.get("content") or "").strip()
    try:
        handler = CONTENTS.get(content)
        if handler is None:
            raise ApiError("The value of the parameter 'content' is not valid.")
        response, detail = handler(caller, post, _format(post))
    except ApiError as error:
        _audit(caller, content[:50], {"refused": str(error)[:2000]})
        return formats.error_response(str(error), error.status, error_format)
    except PermissionDenied as error:
        return formats.error_response(str(error) or "Not allowed.", 403, error_format)
    if detail is not None:
        _audit(caller, content, detail)
    return response
