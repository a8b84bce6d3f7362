from django.urls import path

from api import pages, views

app_name = "api"

urlpatterns = [
    # Clients check that the address ends in /api/.
    path("api/", views.endpoint, name="endpoint"),
    path("accounts/api-tokens/", pages.tokens, name="tokens"),
    path("accounts/api-tokens/<int:pk>/revoke/", pages.token_revoke_page, name="token_revoke"),
    path("imports/", pages.data_import, name="data_import"),
]
