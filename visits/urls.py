from django.urls import path

from visits import views

app_name = "visits"
urlpatterns = [
    path("", views.screening_log, name="screening_log"),
    path("<int:subject_pk>/consent/", views.consent, name="consent"),
    path("<int:subject_pk>/identity/", views.identity, name="identity"),
    path("<int:subject_pk>/screen-failure/", views.screen_fail, name="screen_fail"),
    path("<int:subject_pk>/unblind/", views.unblind, name="unblind"),
    path("pharmacy/", views.pharmacy, name="pharmacy"),
]
