"""Rate limits on the doors an attacker knocks at: the login page (per client address), every
password prompt (per account) and the API (per token, else per account or address).

A fixed window counter per (scope, key) in the shared cache: Redis in production, so every web
process and worker counts together; the process's memory in the demo. Each request of a scope
adds one to its key's counter for the current window (``RATE_LIMITS``, e.g. 30 requests per
300 seconds); over the limit, :func:`rate_limit_hit` raises :class:`RateLimited`, which
:class:`RateLimitMiddleware` answers with HTTP 429, a message saying when to try again, and a
``Retry-After`` header (RFC 9110 10.2.3). The counter lives outside the database, so a refused
request writes nothing there. A fixed window lets through at most twice the limit across a
window's edge; it is a brake on scripted guessing, the lockout (django-axes, per username)
stays the guard of each account.

Another app limits its own door with ``rate_limit_hit(scope="api", key=...)`` or by the path
prefixes of ``RATE_LIMITED_PATHS``, counted by the middleware before the view runs.
"""

import hashlib
import math
import time
from dataclasses import dataclass

from django.conf import settings
from django.core.cache import cache
from django.core.exceptions import RequestDataTooBig, TooManyFieldsSent
from django.http import HttpRequest, HttpResponse, JsonResponse, UnreadablePostError
from django.shortcuts import render
from django.utils.translation import gettext as _
from django.utils.translation import ngettext


@dataclass(frozen=True)
class Rate:
    limit: int
    seconds: int


def parse_rate(value: str | None) -> Rate | None:
    """``"30/300"``: 30 requests per 300 seconds. Empty: no limit."""
    if not value:
        return None
    limit, _sep, seconds = str(value).partition("/")
    rate = Rate(int(limit), int(seconds or 60))
    if rate.limit < 1 or rate.seconds < 1:
        raise ValueError(f"a rate limit needs a positive count and period, not {value!r}")
    return rate


class RateLimited(Exception):
    def __init__(self, scope: str, retry_after: int):
        super().__init__(f"{scope}: rate limit reached, retry after {retry_after} s")
        self.scope = scope
        self.retry_after = retry_after

    @property
    def message(self) -> str:
        what = {
            "login": _("Too many login attempts from this address."),
            "reauthentication": _("Too many password prompts answered in a short time."),
            "api": _("Too many API requests."),
        }.get(self.scope, _("Too many requests."))
        wait = ngettext("Try again in %(seconds)d second.", "Try again in %(seconds)d seconds.",
                        self.retry_after) % {"seconds": self.retry_after}
        return f"{what} {wait}"


def _rate(scope: str) -> Rate | None:
    return parse_rate(settings.RATE_LIMITS.get(scope))


def rate_limit_hit(*, scope: str, key: str, now: float | None = None) -> None:
    """Count one request of ``key`` (an address, ``user:<pk>``, a token: hashed, never stored
    as typed) in ``scope``; raise :class:`RateLimited` when that makes it one too many."""
    rate = _rate(scope)
    if rate is None:
        return
    now = time.time() if now is None else now
    window = int(now // rate.seconds)
    digest = hashlib.sha256(key.encode()).hexdigest()[:32]
    cache_key = f"{settings.RATE_LIMIT_KEY_PREFIX}:{scope}:{digest}:{window}"
    cache.add(cache_key, 0, timeout=rate.seconds + 1)
    try:
        count = cache.incr(cache_key)
    except ValueError:  # expired between add and incr
        cache.set(cache_key, 1, timeout=rate.seconds + 1)
        count = 1
    if count > rate.limit:
        retry_after = max(1, math.ceil((window + 1) * rate.seconds - now))
        raise RateLimited(scope, retry_after)


def client_address(request: HttpRequest) -> str:
    """The client's address: behind the TLS proxy (``BEHIND_TLS_PROXY``) the one the proxy
    appended last to ``X-Forwarded-For`` (the only entry the client cannot forge), else the
    connection's."""
    if settings.RATE_LIMIT_CLIENT_FROM_FORWARDED_FOR:
        forwarded = request.META.get("HTTP_X_FORWARDED_FOR", "")
        last = forwarded.rsplit(",", 1)[-1].strip()
        if last:
            return last[:100]
    return str(request.META.get("REMOTE_ADDR") or "")[:100]


def api_client_key(request: HttpRequest) -> str:
    """Who an API request counts for: its token (the Authorization header, or the form's
    ``token`` field, where REDCap clients send it), else the signed-in account, else the
    address. Tokens are counted as sent (hashed by :func:`rate_limit_hit`); one that is not
    valid is refused by the API, and bad tokens lock out their address there
    (``api.tokens``), so inventing tokens buys a script no new requests."""
    authorization = request.META.get("HTTP_AUTHORIZATION", "")
    if authorization:
        return "token:" + authorization
    posted = _posted_token(request)
    if posted:
        return "token:" + posted
    user = getattr(request, "user", None)
    if user is not None and user.is_authenticated:
        return f"user:{user.pk}"
    return "address:" + client_address(request)


def _posted_token(request: HttpRequest) -> str:
    """The ``token`` of a form-encoded POST ("" otherwise). Only a urlencoded body is read here:
    a body the view cannot read either (too large, malformed) is left for the view to answer,
    and a multipart upload is not parsed before the view's own limits apply."""
    if request.method != "POST" or request.content_type != "application/x-www-form-urlencoded":
        return ""
    try:
        token = request.POST.get("token", "")
    except (RequestDataTooBig, TooManyFieldsSent, UnreadablePostError):
        return ""
    return token.strip().upper()[:64]


def rate_limited_response(request: HttpRequest, error: RateLimited) -> HttpResponse:
    """HTTP 429 with the message and ``Retry-After``: JSON for the API, else a page."""
    if request.path.startswith(tuple(settings.RATE_LIMITED_PATHS)) or (
            "application/json" in request.headers.get("Accept", "")):
        response = JsonResponse({"error": "rate_limited", "detail": error.message,
                                 "retry_after": error.retry_after}, status=429)
    else:
        response = render(request, "rate_limited.html", {"message": error.message},
                          status=429)
    response["Retry-After"] = str(error.retry_after)
    return response


class RateLimitMiddleware:
    """Counts the requests to ``RATE_LIMITED_PATHS`` (the API) per client before any view runs,
    and answers a :class:`RateLimited` raised anywhere below it (the login page, a password
    prompt) with HTTP 429. Listed after the authentication middleware."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        if request.path.startswith(tuple(settings.RATE_LIMITED_PATHS)):
            try:
                rate_limit_hit(scope="api", key=api_client_key(request))
            except RateLimited as error:
                return rate_limited_response(request, error)
        return self.get_response(request)

    def process_exception(self, request, exception):
        if isinstance(exception, RateLimited):
            return rate_limited_response(request, exception)
        return None
