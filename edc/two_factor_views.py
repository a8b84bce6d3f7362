"""The two pages of two-factor login: enrolment (QR code, confirm, recovery codes) and the code
after the password (``edc.two_factor``)."""

from django.contrib.auth.decorators import login_required
from django.core.exceptions import ValidationError
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.debug import sensitive_post_parameters
from django_otp import user_has_device

from edc import two_factor


def _next(request: HttpRequest) -> str:
    target = request.POST.get("next") or request.GET.get("next") or ""
    if target.startswith("/") and url_has_allowed_host_and_scheme(
            target, allowed_hosts={request.get_host()}, require_https=request.is_secure()):
        return target
    return "/"


@sensitive_post_parameters()
@login_required
def enrol(request: HttpRequest) -> HttpResponse:
    user = request.user
    if user_has_device(user, confirmed=True):
        return redirect(_next(request))
    error = None
    if request.method == "POST":
        # Only the page (GET) makes the device: a refused code writes nothing.
        device = two_factor.enrolment_device(user, create=False)
        if device is None:
            return redirect("two_factor_enrol")
        try:
            codes = two_factor.enrolment_confirm(request=request, user=user, device=device,
                                                 code=request.POST.get("code", "")[:16])
        except ValidationError as exc:
            error = " ".join(exc.messages)
        else:
            return render(request, "registration/two_factor_recovery_codes.html",
                          {"codes": codes, "next": _next(request)})
    else:
        device = two_factor.enrolment_device(user)
    return render(request, "registration/two_factor_enrol.html", {
        "qr_svg": two_factor.enrolment_qr_svg(device),
        "secret": two_factor.enrolment_secret(device),
        "error": error, "next": _next(request),
    }, status=400 if error else 200)


@sensitive_post_parameters()
@login_required
def verify(request: HttpRequest) -> HttpResponse:
    user = request.user
    if user.is_verified():
        return redirect(_next(request))
    if not user_has_device(user, confirmed=True):
        return redirect("two_factor_enrol")
    error = None
    if request.method == "POST":
        if two_factor.code_verify(request=request, user=user,
                                  code=request.POST.get("code", "")[:16]):
            return redirect(_next(request))
        error = True
    return render(request, "registration/two_factor_verify.html",
                  {"error": error, "next": _next(request)}, status=400 if error else 200)
