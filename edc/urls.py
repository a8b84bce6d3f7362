from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.urls import include, path

from edc import language_views, notification_views, views
from forms import dashboard_views

urlpatterns = [
    path("", views.home, name="home"),
    path(
        "accounts/login/",
        auth_views.LoginView.as_view(redirect_authenticated_user=True),
        name="login",
    ),
    path("accounts/logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("accounts/password/", views.password_change, name="password_change"),
    path("accounts/settings/", language_views.account, name="account"),
    path("language/", language_views.language_switch, name="language_switch"),
    path("notifications/", notification_views.notifications, name="notifications"),
    path("dashboard/", dashboard_views.dashboard, name="dashboard"),
    path("screening/", include("visits.urls")),
    path("casebook/", include("forms.urls")),
    path("exports/", include("edc.exports.urls")),
    path("admin/", admin.site.urls),
]
