"""Django admin is for administrators configuring sites and accounts, never clinical data."""

from axes.utils import reset as axes_reset
from django.contrib import admin, messages
from django.contrib.auth.admin import UserAdmin as BaseUserAdmin
from django.utils.translation import gettext_lazy as _
from django.utils.translation import ngettext

from edc.admin_history import HistoryAdmin
from edc.models import JobRun, Site, User

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
                "fields": ("username", "password1", "password2", "role", "sites"),
            },
        ),
    )
    readonly_fields = ["last_login", "date_joined"]
    actions = ["unlock"]

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
