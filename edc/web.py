"""Small helpers the pages of every app share."""

from django.core.exceptions import ValidationError
from django.http import HttpRequest
from django.utils.http import url_has_allowed_host_and_scheme


def apply_errors(form, error: ValidationError) -> None:
    """Show a service's ValidationError on the form: beside the field it names, or at the top
    for errors of the whole record."""
    if hasattr(error, "error_dict"):
        for name, errors in error.message_dict.items():
            form.add_error(name if name in form.fields else None, errors)
    else:
        form.add_error(None, error.messages)


def next_url(request: HttpRequest, fallback: str) -> str:
    """Where to go back to after a POST: the page's own ``next`` if it is a path on this site.

    Only a path (``/...``) is taken: ``redirect()`` would try any other word (``next=0``,
    ``next=2026-01-01T10:00``) as the name of a URL pattern and fail with a 500, after the
    action itself had succeeded."""
    target = request.POST.get("next", "")
    if target.startswith("/") and url_has_allowed_host_and_scheme(
            target, allowed_hosts={request.get_host()}, require_https=request.is_secure()):
        return target
    return fallback
