"""The user's own password page."""

from django.contrib import messages
from django.contrib.auth import update_session_auth_hash
from django.contrib.auth.decorators import login_required
from django.db import transaction
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.utils.translation import gettext as _
from django.views.decorators.debug import sensitive_post_parameters

from edc.accounts import OwnPasswordChangeForm
from edc.services import user_password_set


@sensitive_post_parameters()
@login_required
@transaction.non_atomic_requests
def password_change(request: HttpRequest) -> HttpResponse:
    """Every user changes their own password. The current password is a re-authentication
    (counted towards the lockout, audited); the new one meets the password policy."""
    form = OwnPasswordChangeForm(request.user, request.POST or None, request=request)
    if request.method == "POST" and form.is_valid():
        user_password_set(user=request.user, password=form.cleaned_data["new_password1"],
                          actor=request.user)
        update_session_auth_hash(request, request.user)
        messages.success(request, _("Your password has been changed."))
        return redirect("home")
    return render(request, "registration/password_change.html", {"form": form},
                  status=400 if form.errors else 200)
