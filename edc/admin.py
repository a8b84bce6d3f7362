"""Django admin is for administrators configuring sites and accounts, never clinical data."""

from contextvars import ContextVar

from axes.utils import reset as axes_reset
from django.contrib import admin, messages
from django.contrib.admin.utils import unquote
from django.contrib.auth.admin import UserAdmin as BaseUserAdmin
from django.contrib.auth.forms import AdminPasswordChangeForm
from django.core.exceptions import PermissionDenied, ValidationError
from django.utils.translation import gettext_lazy as _
from django.utils.translation import ngettext
from django_otp.plugins.otp_static.models import StaticDevice
from django_otp.plugins.otp_totp.models import TOTPDevice

from edc import services
from edc.admin_history import HistoryAdmin
from edc.audit import audit_event
from edc.models import AuditAction, JobRun, RoleGrantRequest, RoleGrantStatus, Site, User

# Two-factor devices are changed only by their holder's enrolment and by the audited reset
# action on the user list (edc.two_factor), not edited here.
for _device_model in (TOTPDevice, StaticDevice):
    if admin.site.is_registered(_device_model):
        admin.site.unregister(_device_model)

admin.site.site_header = _("Trial EDC administration")
admin.site.site_title = _("Trial EDC administration")


@admin.register(Site)
class SiteAdmin(HistoryAdmin):
    list_display = ["code", "name", "time_zone", "is_active"]
    list_filter = ["is_active"]
    search_fields = ["code", "name"]

    def has_delete_permission(self, request, obj=None) -> bool:
        # A site with subjects is protected by the database; deactivate instead.
        return False


# The administrator using the password form (set per request by UserAdmin.user_change_password;
# a ContextVar because one UserAdmin instance serves every thread).
_password_actor: ContextVar[User | None] = ContextVar("password_actor", default=None)


class AccountPasswordForm(AdminPasswordChangeForm):
    """The admin's "change password" form: refused for an account with an unblinded role;
    otherwise saved by ``services.user_password_set`` (audited, and the account must choose
    its own password before an unblinded role is approved)."""

    def clean(self):
        cleaned = super().clean()
        refusal = services.password_set_refusal(actor=_password_actor.get(), user=self.user)
        if refusal:
            # Shown by the password field: Django's template shows no form-wide errors here.
            self.add_error("password1", refusal)
        return cleaned

    def save(self, commit=True):
        actor = _password_actor.get()
        if not commit or actor is None or not self.cleaned_data.get("set_usable_password",
                                                                     True):
            # An unusable password locks the account out: nobody can sign in with it.
            self.user.password_chosen_by_holder = False
            return super().save(commit=commit)
        services.user_password_set(user=self.user, password=self.cleaned_data["password1"],
                                   actor=actor)
        return self.user


@admin.register(User)
class UserAdmin(HistoryAdmin, BaseUserAdmin):
    list_display = ["username", "first_name", "last_name", "role", "is_active", "last_login"]
    list_filter = ["role", "is_active", "sites"]
    filter_horizontal = ["sites"]
    fieldsets = (
        *BaseUserAdmin.fieldsets[:1],
        (_("Person"), {"fields": ("first_name", "last_name", "email")}),
        (_("Trial role"), {"fields": ("role", "sites")}),
        (
            _("Access"),
            {"fields": ("is_active", "is_staff", "is_superuser", "groups")},
        ),
        (_("Important dates"), {"fields": ("last_login", "date_joined")}),
    )
    add_fieldsets = (
        (
            None,
            {
                "classes": ("wide",),
                # The person's name and e-mail are on the form so that the password policy
                # can refuse a password close to them (edc.accounts).
                "fields": ("username", "first_name", "last_name", "email", "password1",
                           "password2", "role", "sites"),
            },
        ),
    )
    readonly_fields = ["last_login", "date_joined"]
    actions = ["unlock", "two_factor_reset"]
    change_password_form = AccountPasswordForm

    def user_change_password(self, request, id, form_url=""):
        user = self.get_object(request, unquote(id)) if request.method == "GET" else None
        refusal = (services.password_set_refusal(actor=request.user, user=user)
                   if user is not None else None)
        if refusal:
            self.message_user(request, refusal, messages.WARNING)  # before anything is typed
        token = _password_actor.set(request.user)
        try:
            return super().user_change_password(request, id, form_url)
        finally:
            _password_actor.reset(token)

    def get_form(self, request, obj=None, change=False, **kwargs):
        """The admin's form, refusing with a message what ``services.user_save`` refuses
        (own role, sites, active state; administrators unblinded)."""
        form = super().get_form(request, obj, change=change, **kwargs)
        actor = request.user

        class AccountForm(form):
            def clean(self):
                cleaned = super().clean()
                before = (User.objects.filter(pk=self.instance.pk).first()
                          if self.instance.pk is not None else None)
                proposed = {name: cleaned[name] for name in services.OWN_ACCOUNT_FIELDS
                            if name in cleaned}
                for refusal in services.account_change_refusals(
                        actor=actor, before=before, proposed=proposed):
                    self.add_error(None, refusal)
                return cleaned

        AccountForm.__name__ = form.__name__
        return AccountForm

    def save_model(self, request, obj, form, change) -> None:
        grant = services.user_save(actor=request.user, user=obj,
                                   sites=form.cleaned_data.get("sites"),
                                   groups=form.cleaned_data.get("groups"))
        if grant is not None:
            self.message_user(request, _(
                "%(user)s keeps their current role until a second administrator approves the "
                "unblinded role “%(role)s” (Unblinded role requests).")
                % {"user": obj.get_username(), "role": grant.get_role_display()},
                messages.WARNING)

    def construct_change_message(self, request, form, formsets, add=False):
        # Called once the admin's password form has saved. A password is recorded by
        # services.user_password_set; an unusable one (sign-in switched off) here.
        if (isinstance(form, AdminPasswordChangeForm)
                and not form.cleaned_data.get("set_usable_password", True)):
            audit_event(action=AuditAction.PASSWORD_CHANGED, user=request.user, obj=form.user,
                        detail={"username": form.user.get_username(),
                                "own": form.user.pk == request.user.pk})
        return super().construct_change_message(request, form, formsets, add)

    def save_related(self, request, form, formsets, change) -> None:
        # Sites and groups were saved by services.user_save.
        for formset in formsets:
            self.save_formset(request, form, formset, change=change)

    def get_readonly_fields(self, request, obj=None):
        # A username names one person for ever (21 CFR 11.100(a)): renaming would free it.
        fields = super().get_readonly_fields(request, obj)
        return [*fields, "username"] if obj is not None else fields

    def has_delete_permission(self, request, obj=None) -> bool:
        # Users are deactivated, never deleted, so every record keeps its author and no
        # username is ever given to someone else.
        return False

    @admin.action(description=_("Unlock after failed logins"))
    def unlock(self, request, queryset) -> None:
        for user in queryset:
            axes_reset(username=user.get_username())
        count = len(queryset)
        self.message_user(
            request,
            ngettext("%d account unlocked.", "%d accounts unlocked.", count) % count,
            messages.SUCCESS,
        )

    @admin.action(description=_("Reset two-factor login (lost phone)"))
    def two_factor_reset(self, request, queryset) -> None:
        from edc.two_factor import two_factor_reset

        done = 0
        for user in queryset:
            try:
                two_factor_reset(user=user, actor=request.user)
            except ValidationError as error:
                self.message_user(request, " ".join(error.messages), messages.ERROR)
            else:
                done += 1
        if done:
            self.message_user(request, ngettext(
                "Two-factor login reset for %d account: it sets up a new one at its next login.",
                "Two-factor login reset for %d accounts: they set up a new one at their next "
                "login.", done) % done, messages.SUCCESS)


@admin.register(RoleGrantRequest)
class RoleGrantRequestAdmin(admin.ModelAdmin):
    """Unblinded roles wait here until a second administrator approves or refuses them."""

    list_display = ["user", "role", "requested_by", "requested_at", "status", "decided_by",
                    "decided_at"]
    list_filter = ["status", "role"]
    actions = ["approve", "refuse"]

    def has_add_permission(self, request) -> bool:
        return False  # asked for by giving the role on the user's page

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False

    def _decide(self, request, queryset, *, approve: bool) -> None:
        for grant in queryset.filter(status=RoleGrantStatus.PENDING):
            try:
                services.role_grant_decide(grant=grant, approver=request.user, approve=approve)
            except (ValidationError, PermissionDenied) as error:
                text = " ".join(getattr(error, "messages", [str(error)]))
                self.message_user(request, f"{grant.user}: {text}", messages.ERROR)
            else:
                self.message_user(request, _("%(user)s: %(role)s %(decision)s.") % {
                    "user": grant.user, "role": grant.get_role_display(),
                    "decision": _("approved") if approve else _("refused")}, messages.SUCCESS)

    @admin.action(description=_("Approve the selected unblinded roles"))
    def approve(self, request, queryset) -> None:
        self._decide(request, queryset, approve=True)

    @admin.action(description=_("Refuse the selected unblinded roles"))
    def refuse(self, request, queryset) -> None:
        self._decide(request, queryset, approve=False)


@admin.register(JobRun)
class JobRunAdmin(admin.ModelAdmin):
    list_display = ["name", "started_at", "finished_at", "worker", "succeeded"]
    list_filter = ["name", "succeeded"]

    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False
