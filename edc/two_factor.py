"""Two-factor login (issue 19 item 1; 21 CFR 11.300): a time-based one-time code (TOTP, RFC
6238, through django-otp) after the password, for the roles ``TWO_FACTOR_ROLES`` names
(default: every role when ``DEBUG`` is off; none in the demo).

A person whose role needs it and who has no authenticator yet is sent to the enrolment page
after the password: a QR code (drawn as SVG on the server, no image library) and the secret
it holds, then a code from the app to confirm, then ten recovery codes shown once (django-otp's
static device: each works once, for a lost phone). Until the code is given every page but
these redirects there. An administrator resets someone's device (admin action, audited) and
the person enrols again at their next login; nobody resets their own.
"""

import io
from base64 import b32encode
from urllib.parse import quote

import qrcode
import qrcode.image.svg
from django.conf import settings
from django.contrib.auth.signals import user_login_failed
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import transaction
from django.http import HttpRequest
from django.shortcuts import redirect
from django.urls import reverse
from django.utils.translation import gettext as _
from django_otp import devices_for_user, user_has_device
from django_otp import login as otp_login
from django_otp.plugins.otp_static.models import StaticDevice, StaticToken
from django_otp.plugins.otp_totp.models import TOTPDevice

from edc.audit import audit_event
from edc.models import AuditAction, User

RECOVERY_CODES = 10
PROMPT = "two_factor"


def two_factor_required(user: User) -> bool:
    roles = settings.TWO_FACTOR_ROLES
    return "all" in roles or (bool(user.role) and user.role in roles)


def enrolment_device(user: User, *, create: bool = True) -> TOTPDevice | None:
    """The authenticator being enrolled (unconfirmed), created on first use (``create``)."""
    device = TOTPDevice.objects.filter(user=user, confirmed=False).first()
    if device is None and create:
        device = TOTPDevice.objects.create(user=user, name=_("Authenticator app"),
                                           confirmed=False)
    return device


def enrolment_secret(device: TOTPDevice) -> str:
    """The key as people type it into an app by hand: base32 in groups of four."""
    key = b32encode(device.bin_key).decode()
    return " ".join(key[i:i + 4] for i in range(0, len(key), 4))


def enrolment_qr_svg(device: TOTPDevice) -> str:
    """The provisioning URI (otpauth://) as an inline SVG QR code."""
    image = qrcode.make(device.config_url, image_factory=qrcode.image.svg.SvgPathImage,
                        box_size=8)
    buffer = io.BytesIO()
    image.save(buffer)
    svg = buffer.getvalue().decode()
    return svg[svg.index("<svg"):]


def _failed(request: HttpRequest, user: User, what: str) -> None:
    """A wrong code: audited as a failed login at the two-factor prompt (the device's own
    throttling, growing waits after each failure, slows guessing)."""
    user_login_failed.send(sender=__name__, request=request,
                           credentials={"username": user.get_username(), "prompt": what})


@transaction.atomic
def enrolment_confirm(*, request: HttpRequest, user: User, device: TOTPDevice,
                      code: str) -> list[str]:
    """Confirm the authenticator with a code it shows; returns the new recovery codes (shown
    once). The session counts as verified from now on."""
    if device.user_id != user.pk or device.confirmed:
        raise PermissionDenied
    if not device.verify_token(code.strip().replace(" ", "")):
        raise ValidationError({"code": _("The code is not correct. Check the time on your "
                                         "phone and type the current code.")})
    device.confirmed = True
    device.save(update_fields=["confirmed"])
    TOTPDevice.objects.filter(user=user).exclude(pk=device.pk).delete()
    StaticDevice.objects.filter(user=user).delete()
    recovery = StaticDevice.objects.create(user=user, name=_("Recovery codes"), confirmed=True)
    codes = [StaticToken.random_token() for _n in range(RECOVERY_CODES)]
    StaticToken.objects.bulk_create([StaticToken(device=recovery, token=c) for c in codes])
    otp_login(request, device)
    audit_event(action=AuditAction.TWO_FACTOR_ENROLLED, user=user, obj=user,
                detail={"username": user.get_username(), "recovery_codes": RECOVERY_CODES})
    return codes


def code_verify(*, request: HttpRequest, user: User, code: str) -> bool:
    """The second step of a login: a code of the authenticator or an unused recovery code.
    A wrong one is audited (``login_failed``, prompt ``two_factor``); devices throttle."""
    code = code.strip().replace(" ", "")
    for device in devices_for_user(user, confirmed=True):
        allowed, _detail = device.verify_is_allowed()
        if allowed and code and device.verify_token(code):
            otp_login(request, device)
            audit_event(action=AuditAction.TWO_FACTOR_VERIFIED, user=user, obj=user,
                        request=request,
                        detail={"device": "recovery code" if isinstance(device, StaticDevice)
                                else "authenticator"})
            return True
    _failed(request, user, PROMPT)
    return False


@transaction.atomic
def two_factor_reset(*, user: User, actor: User) -> None:
    """Remove someone's authenticator and recovery codes (a lost phone); they enrol again at
    their next login. Nobody resets their own."""
    if actor.pk == user.pk:
        raise ValidationError(_("Nobody resets their own two-factor device; ask another "
                                "administrator."))
    had = user_has_device(user, confirmed=True)
    TOTPDevice.objects.filter(user=user).delete()
    StaticDevice.objects.filter(user=user).delete()
    audit_event(action=AuditAction.TWO_FACTOR_RESET, user=actor, obj=user,
                detail={"username": user.get_username(), "had_device": had})


class TwoFactorRequiredMiddleware:
    """After the password, a person whose role needs the second factor reaches only the
    enrolment or code page (and logout) until their session is verified. Listed after
    django-otp's ``OTPMiddleware``."""

    OPEN_URL_NAMES = ("login", "logout", "two_factor_enrol", "two_factor_verify")

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        user = getattr(request, "user", None)
        if (user is not None and user.is_authenticated and not user.is_verified()
                and two_factor_required(user) and not self._open(request.path)):
            name = ("two_factor_verify" if user_has_device(user, confirmed=True)
                    else "two_factor_enrol")
            return redirect(f"{reverse(name)}?next={quote(request.get_full_path())}")
        return self.get_response(request)

    def _open(self, path: str) -> bool:
        return path.startswith(settings.STATIC_URL if settings.STATIC_URL.startswith("/")
                               else "/" + settings.STATIC_URL) or path in {
            reverse(name) for name in self.OPEN_URL_NAMES}
