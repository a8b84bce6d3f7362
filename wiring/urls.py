from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.urls import include, path

from edc import language_views, notification_views, two_factor_views
from edc import views as account_views
from edc.accounts import LoginView
from forms.reports import views as report_views
from wiring import views

urlpatterns = [
    path("", views.home, name="home"),
    path("accounts/login/", LoginView.as_view(), name="login"),
    path("accounts/logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("accounts/password/", account_views.password_change, name="password_change"),
    path("accounts/two-factor/enrol/", two_factor_views.enrol, name="two_factor_enrol"),
    path("accounts/two-factor/verify/", two_factor_views.verify, name="two_factor_verify"),
    path("accounts/settings/", language_views.account, name="account"),
    path("language/", language_views.language_switch, name="language_switch"),
    path("notifications/", notification_views.notifications, name="notifications"),
    path("dashboard/", report_views.dashboard, name="dashboard"),
    path("screening/", include("visits.urls")),
    path("casebook/", include("forms.urls")),
    path("exports/", include("exports.urls")),
    path("", include("api.urls")),
    path("admin/", admin.site.urls),
]
