"""Account security (21 CFR 11.300): lockout after failed logins, the password policy.

django-axes counts failed logins per username; settings.py holds the limits. This module holds
the few pieces axes and Django ask the project for.
"""

from difflib import SequenceMatcher

from axes.backends import AxesStandaloneBackend
from django.conf import settings
from django.contrib.auth import views as auth_views
from django.contrib.auth.forms import PasswordChangeForm
from django.contrib.auth.password_validation import UserAttributeSimilarityValidator
from django.core.exceptions import ValidationError
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.utils.translation import gettext as _


class LockoutBackend(AxesStandaloneBackend):
    """Refuses any authentication of a locked-out username, then lets ModelBackend check the
    password.

    Signing, emergency unblinding and the password change ask for the password again through
    ``authenticate()`` (``edc.services.password_confirms``), which may be called without a
    request; axes alone would raise there. A locked account is refused there too: axes locks by
    username only, which needs no client details from the request.
    """

    def authenticate(self, request, username=None, password=None, **kwargs):
        return super().authenticate(
            request if request is not None else HttpRequest(), username, password, **kwargs
        )


class LoginView(auth_views.LoginView):
    """Django's login page, its attempts rate-limited per client address (``RATE_LIMITS``)
    before any password is checked."""

    redirect_authenticated_user = True

    def post(self, request, *args, **kwargs):
        from edc.ratelimit import client_address, rate_limit_hit

        rate_limit_hit(scope="login", key=client_address(request))
        return super().post(request, *args, **kwargs)


def lockout_username(request: HttpRequest | None, credentials: dict | None) -> str:
    """The name django-axes counts failed attempts under (``AXES_USERNAME_CALLABLE``): the
    account's stored username whatever the letter case typed, so "Nurse" and "nurse" feed
    one lockout; an unknown name in lower case, for the same reason."""
    from edc.models import User

    typed = (credentials or {}).get("username")
    if typed is None and request is not None:
        typed = getattr(request, "POST", {}).get("username")
    typed = str(typed or "")
    if not typed:
        return typed
    stored = User.objects.by_username(typed).values_list("username", flat=True).first()
    return stored if stored is not None else typed.lower()


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


class PersonalNameSimilarityValidator(UserAttributeSimilarityValidator):
    """The password must not be close to the person's name, e-mail or username.

    Django's validator compares the whole password with each attribute and each of its parts,
    so "zhangwei2026!!" passes for Zhang Wei: no single attribute is close to the whole. This
    one also compares the password's letters alone (digits and symbols dropped) with the full
    name in both orders (Chinese names are written family name first), the e-mail's local part
    and the username without separators, and refuses a password containing any of these.
    """

    min_contained_length = 4

    def validate(self, password: str, user=None) -> None:
        super().validate(password, user)
        if user is None:
            return
        letters = "".join(ch for ch in password.casefold() if ch.isalpha())
        if not letters:
            return
        for name in self._names(user):
            contained = len(name) >= self.min_contained_length and name in letters
            close = SequenceMatcher(a=letters, b=name).ratio() >= self.max_similarity
            if contained or close:
                raise ValidationError(
                    _("The password is too similar to your name, e-mail or username."),
                    code="password_too_similar",
                )

    @staticmethod
    def _names(user) -> set[str]:
        def squash(value) -> str:
            return "".join(ch for ch in str(value or "").casefold() if ch.isalpha())

        first, last = squash(user.first_name), squash(user.last_name)
        email_local = str(getattr(user, "email", "") or "").partition("@")[0]
        candidates = {squash(email_local), squash(user.get_username())}
        if first and last:
            candidates.update({first + last, last + first})
        return {name for name in candidates if len(name) >= 3}


class OwnPasswordChangeForm(PasswordChangeForm):
    """Django's password change form, with the current password checked as a
    re-authentication: a wrong one counts towards the lockout and is audited
    (``edc.services.password_confirms``)."""

    def __init__(self, user, *args, request: HttpRequest | None = None, **kwargs):
        self.request = request
        super().__init__(user, *args, **kwargs)

    def clean_old_password(self) -> str:
        from edc.services import Prompt, password_confirms

        old_password = self.cleaned_data["old_password"]
        if not password_confirms(self.user, old_password, self.request,
                                 prompt=Prompt.PASSWORD_CHANGE):
            raise ValidationError(self.error_messages["password_incorrect"],
                                  code="password_incorrect")
        return old_password
