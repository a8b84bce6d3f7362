"""Account security (21 CFR 11.300): lockout after failed logins, the password policy.

django-axes counts failed logins per username; settings.py holds the limits. This module holds
the few pieces axes and Django ask the project for.
"""

from axes.backends import AxesStandaloneBackend
from django.conf import settings
from django.core.exceptions import ValidationError
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.utils.translation import gettext as _


class LockoutBackend(AxesStandaloneBackend):
    """Refuses any authentication of a locked-out username, then lets ModelBackend check the
    password.

    Signing and emergency unblinding ask for the password again through ``authenticate()``
    without the request (``edc.services.password_confirms``); axes alone would raise there. A
    locked account is refused there too: axes locks by username only, which needs no client
    details from the request. Wrong passwords given there are not counted without the request.
    """

    def authenticate(self, request, username=None, password=None, **kwargs):
        return super().authenticate(
            request if request is not None else HttpRequest(), username, password, **kwargs
        )


def lockout_response(
    request: HttpRequest, original_response: HttpResponse | None, credentials: dict | None
) -> HttpResponse:
    """The page shown instead of the login form once an account is locked (HTTP 429)."""
    minutes = int(settings.AXES_COOLOFF_TIME.total_seconds() // 60)
    context = {"failure_limit": settings.AXES_FAILURE_LIMIT, "cooloff_minutes": minutes}
    return render(
        request,
        "registration/locked_out.html",
        context,
        status=settings.AXES_HTTP_RESPONSE_CODE,
    )


class UsernameNotInPasswordValidator:
    """The password must not contain the username, in any letter case. Usernames shorter than
    three characters are left to ``UserAttributeSimilarityValidator``."""

    min_username_length = 3

    def validate(self, password: str, user=None) -> None:
        username = (user.get_username() or "") if user is not None else ""
        if len(username) >= self.min_username_length and (
            username.casefold() in password.casefold()
        ):
            raise ValidationError(
                _("The password must not contain the username."),
                code="password_contains_username",
            )

    def get_help_text(self) -> str:
        return _("Your password must not contain your username.")
