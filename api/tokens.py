"""Creating, revoking and checking API tokens; counting bad ones.

A token is shown once, when it is created; only its SHA-256 is kept (``api.models``). Every
creation and revocation is an audit event; so is every refused token. Bad tokens count per
client address: after ``API_BAD_TOKEN_LIMIT`` of them within ``API_BAD_TOKEN_COOLOFF`` the
address is refused (HTTP 429) until the cool-off has passed, whatever token it sends. They do
not count towards the lockout of the token's user: a leaked, revoked token in someone else's
script would otherwise lock its owner out of the web pages. An account locked by failed
passwords (django-axes) is refused through the API as well.
"""

import datetime as dt
import hashlib
import re
import secrets
from dataclasses import dataclass

from axes.handlers.proxy import AxesProxyHandler
from django.conf import settings
from django.core.cache import cache
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import transaction
from django.http import HttpRequest
from django.utils import timezone
from django.utils.translation import gettext as _

from api.models import ApiToken
from edc import bounds
from edc.audit import audit_event
from edc.models import AuditAction, User
from edc.ratelimit import client_address
from edc.roles import Action, can

TOKEN_PATTERN = re.compile(r"^[0-9A-Fa-f]{32}$")
NAME_LENGTH = 100


def token_hash(token: str) -> str:
    return hashlib.sha256(token.upper().encode("ascii")).hexdigest()


def _may_hold_token(user: User) -> bool:
    return bool(user.is_active and user.role)


@transaction.atomic
def token_create(*, user: User, name: str, days: int | None = None,
                 actor: User | None = None) -> tuple[ApiToken, str]:
    """A new token for ``user`` (created by ``actor``: the user themself on their page, or
    None for the ``api_token`` command). Returns the record and the token, which is shown
    once and never again."""
    name = bounds.text_input(name, limit=NAME_LENGTH, field="name").strip()
    if not name:
        raise ValidationError({"name": _("Give the token a name (what the script does).")})
    days = settings.API_TOKEN_DAYS if days is None else days
    if not 1 <= days <= settings.API_TOKEN_MAX_DAYS:
        raise ValidationError({"days": _("A token lasts from 1 to %(max)d days.")
                               % {"max": settings.API_TOKEN_MAX_DAYS}})
    if not _may_hold_token(user):
        raise PermissionDenied(_("Only an active account with a role may hold an API token."))
    if actor is not None and actor.pk != user.pk:
        raise PermissionDenied(_("A token is created by its holder."))
    plain = secrets.token_hex(16).upper()
    now = timezone.now()
    token = ApiToken(user=user, name=name, key_hash=token_hash(plain), created_at=now,
                     expires_at=now + dt.timedelta(days=days))
    token.full_clean()
    token.save()
    audit_event(action=AuditAction.API_TOKEN_CREATED, user=actor or user, obj=token,
                detail={"token": token.name, "holder": user.get_username(),
                        "expires_at": token.expires_at.isoformat()})
    return token, plain


def may_revoke(actor: User, token: ApiToken) -> bool:
    """The holder revokes their own tokens; an administrator revokes anyone's."""
    return actor.pk == token.user_id or can(actor, Action.MANAGE_USERS)


@transaction.atomic
def token_revoke(*, token: ApiToken, actor: User) -> ApiToken:
    token = ApiToken.objects.select_for_update().select_related("user").get(pk=token.pk)
    if not may_revoke(actor, token):
        raise PermissionDenied(_("Only the holder or an administrator revokes a token."))
    if token.revoked_at is not None:
        return token
    token.revoked_at = timezone.now()
    token.revoked_by = actor
    token.save(update_fields=["revoked_at", "revoked_by"])
    audit_event(action=AuditAction.API_TOKEN_REVOKED, user=actor, obj=token,
                detail={"token": token.name, "holder": token.user.get_username()})
    return token


# --- Checking a token on each call ---------------------------------------------------------


class TokenRefused(Exception):
    def __init__(self, message: str, status: int):
        super().__init__(message)
        self.status = status


@dataclass(frozen=True)
class Caller:
    user: User
    token: ApiToken


def bad_token_key(address: str) -> str:
    """The cache key counting ``address``'s bad tokens, under the rate limits' prefix
    (``RATE_LIMIT_KEY_PREFIX``): deployments sharing one Redis, and tests sharing one between
    runs, count apart."""
    return f"{settings.RATE_LIMIT_KEY_PREFIX}:api-bad-token:{address}"


def _bad_key(request: HttpRequest) -> str:
    return bad_token_key(client_address(request) or "unknown")


def address_locked(request: HttpRequest) -> bool:
    return (cache.get(_bad_key(request)) or 0) >= settings.API_BAD_TOKEN_LIMIT


def _count_bad_token(request: HttpRequest) -> None:
    key = _bad_key(request)
    timeout = int(settings.API_BAD_TOKEN_COOLOFF.total_seconds())
    if not cache.add(key, 1, timeout=timeout):
        try:
            cache.incr(key)
        except ValueError:  # expired between add and incr
            cache.add(key, 1, timeout=timeout)


def _refuse(request: HttpRequest, reason: str, token: ApiToken | None = None) -> TokenRefused:
    """Count and audit a refused token (outside any transaction: the count and the event
    outlive the call)."""
    _count_bad_token(request)
    detail = {"reason": reason}
    if token is not None:
        detail |= {"token": token.name, "holder": token.user.get_username()}
    audit_event(action=AuditAction.API_TOKEN_REFUSED, request=request, detail=detail,
                username_attempted=token.user.get_username() if token is not None else "")
    return TokenRefused(_("You do not have permissions to use the API"), 403)


def token_authenticate(request: HttpRequest, raw: str) -> Caller:
    """The caller a token stands for, or :class:`TokenRefused` (403; 429 once the address
    sent too many bad tokens)."""
    if address_locked(request):
        raise TokenRefused(_("Too many invalid API tokens from this address: try again "
                             "later."), 429)
    raw = (raw or "").strip()
    if not TOKEN_PATTERN.match(raw):
        raise _refuse(request, "malformed")
    token = (ApiToken.objects.select_related("user").filter(key_hash=token_hash(raw))
             .first())
    if token is None:
        raise _refuse(request, "unknown")
    if token.revoked_at is not None:
        raise _refuse(request, "revoked", token)
    now = timezone.now()
    if token.expires_at <= now:
        raise _refuse(request, "expired", token)
    user = token.user
    if not _may_hold_token(user):
        raise _refuse(request, "account inactive", token)
    if AxesProxyHandler.is_locked(request, credentials={"username": user.get_username()}):
        raise _refuse(request, "account locked", token)
    if token.last_used_at is None or now - token.last_used_at > dt.timedelta(minutes=1):
        ApiToken.objects.filter(pk=token.pk).update(last_used_at=now)
    return Caller(user=user, token=token)
