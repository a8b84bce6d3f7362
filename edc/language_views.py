"""Choosing the language: the switcher in the header and on the login page, and the
language setting on the person's own account page."""

from django import forms
from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.utils import translation
from django.utils.translation import gettext
from django.utils.translation import gettext_lazy as _
from django.views.decorators.http import require_http_methods, require_POST

from edc.i18n import language_code
from edc.services import user_language_set
from edc.web import next_url


class LanguageForm(forms.Form):
    language = forms.ChoiceField(
        label=_("Language"), required=False,
        choices=[("", _("The browser's language")), *settings.LANGUAGES],
        help_text=_("The pages, e-mails and notifications you read. Data are stored as codes "
                    "and shown in each reader's language; exports stay in English unless "
                    "asked otherwise."),
    )


def _remember(response: HttpResponse, language: str) -> HttpResponse:
    """The language cookie: the login page after logging out speaks the same language."""
    if language:
        response.set_cookie(settings.LANGUAGE_COOKIE_NAME, language,
                            max_age=settings.LANGUAGE_COOKIE_AGE,
                            samesite="Lax", secure=settings.SESSION_COOKIE_SECURE)
    else:
        response.delete_cookie(settings.LANGUAGE_COOKIE_NAME)
    return response


@require_POST
def language_switch(request: HttpRequest) -> HttpResponse:
    """The switcher: signed in, the choice is kept on the account; on the login page, in
    the language cookie only. An unknown language is refused (400), nothing changed."""
    language = language_code(request.POST.get("language", ""))
    if not language:
        return HttpResponse(gettext("Choose one of the languages offered."), status=400,
                            content_type="text/plain; charset=utf-8")
    if request.user.is_authenticated:
        user_language_set(user=request.user, language=language)
    translation.activate(language)
    return _remember(redirect(next_url(request, "home")), language)


@login_required
@require_http_methods(["GET", "POST"])
def account(request: HttpRequest) -> HttpResponse:
    """The person's own settings: their language (the browser's when none is chosen)."""
    form = LanguageForm(request.POST or None, initial={"language": request.user.language})
    if request.method == "POST":
        if form.is_valid():
            language = form.cleaned_data["language"]
            user_language_set(user=request.user, language=language)
            translation.activate(language or translation.get_language_from_request(request))
            messages.success(request, gettext("Your language setting has been saved."))
            return _remember(redirect("account"), language)
        return render(request, "edc/account.html", {"form": form}, status=400)
    return render(request, "edc/account.html", {"form": form})
