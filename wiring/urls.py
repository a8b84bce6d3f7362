from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.urls import include, path

from edc import language_views, notification_views
from edc import views as account_views
from forms.reports import views as report_views
from wiring import views

urlpatterns = [
    path("", views.home, name="home"),
    path(
        "accounts/login/",
        auth_views.LoginView.as_view(redirect_authenticated_user=True),
        name="login",
    ),
    path("accounts/logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("accounts/password/", account_views.password_change, name="password_change"),
    path("accounts/settings/", language_views.account, name="account"),
    path("language/", language_views.language_switch, name="language_switch"),
    path("notifications/", notification_views.notifications, name="notifications"),
    path("dashboard/", report_views.dashboard, name="dashboard"),
    path("screening/", include("visits.urls")),
    path("casebook/", include("forms.urls")),
    path("exports/", include("exports.urls")),
    path("admin/", admin.site.urls),
]
