"""Show times in the local time of the site a user works at."""

import zoneinfo

from django.utils import timezone, translation
from django.utils.cache import add_never_cache_headers
from django.utils.functional import LazyObject

from edc.roles import has_all_sites
from edc.sessions import renew_if_due


class SessionRenewalMiddleware:
    """Keep a signed-in session alive while it is used, writing it at most once per
    ``SESSION_RENEW_SECONDS`` instead of on every request.

    The idle log-off (``SESSION_COOKIE_AGE``) counts from the session's last write: a session
    with data is written again (its expiry moved to now + ``SESSION_COOKIE_AGE``) once its
    last renewal is ``SESSION_RENEW_SECONDS`` old or more. A session idle for
    ``SESSION_COOKIE_AGE`` is therefore always logged off, at most ``SESSION_RENEW_SECONDS``
    earlier than counted from the very last click, never later; every other request saves an
    UPDATE of the session row and its transaction. A sign-in counts as a renewal
    (``edc.sessions.renewed_at_login``). Runs after ``SessionMiddleware`` (listed after it),
    which saves a session marked modified."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        response = self.get_response(request)
        session = getattr(request, "session", None)
        if session is not None and not session.is_empty():
            renew_if_due(session)
        return response


class SiteTimezoneMiddleware:
    """Activate the time zone of the user's sites when they all share one; otherwise (trial-wide
    roles, or sites in several zones) pages fall back to ``TIME_ZONE`` and label each time with
    its site's zone where it matters."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        user = request.user
        zone = None
        if user.is_authenticated and not has_all_sites(user):
            sites = list(user.sites.values_list("pk", "time_zone"))
            # The same read answers ``User.site_pks`` (every permission check) for the request.
            account = user._wrapped if isinstance(user, LazyObject) else user
            account.__dict__.setdefault("site_pks", frozenset(pk for pk, _zone in sites))
            zones = {zone for _pk, zone in sites}
            if len(zones) == 1:
                zone = zoneinfo.ZoneInfo(zones.pop())
        if zone is not None:
            timezone.activate(zone)
        else:
            timezone.deactivate()
        return self.get_response(request)


class NoStoreForAuthenticatedMiddleware:
    """Every response to a signed-in user (pages, downloads, the admin) carries
    ``Cache-Control: no-store``: nothing a user saw is kept by the browser or a proxy for the
    next person at a shared ward workstation (21 CFR 11.10(d))."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        response = self.get_response(request)
        user = getattr(request, "user", None)
        if user is not None and user.is_authenticated:
            add_never_cache_headers(response)
        return response


class UserLanguageMiddleware:
    """The signed-in person's own language (``User.language``) wins over the browser's, which
    ``LocaleMiddleware`` chose; with none set, the browser's (Accept-Language or the language
    cookie) stays. Runs after ``AuthenticationMiddleware``."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        user = getattr(request, "user", None)
        if user is not None and user.is_authenticated and user.language:
            translation.activate(user.language)
            request.LANGUAGE_CODE = translation.get_language()
        return self.get_response(request)
