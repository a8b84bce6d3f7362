from django.urls import path

from forms.quality import views

urlpatterns = [
    path("edit-checks/", views.edit_checks, name="edit_checks"),
    path("queries/", views.query_list, name="query_list"),
    path("queries/<int:query_pk>/<str:action>/", views.query_act, name="query_act"),
    path("subjects/<int:subject_pk>/queries/<str:kind>/<int:pk>/", views.query_new,
         name="query_new"),
    path("subjects/<int:subject_pk>/verify/<str:crf_code>/<int:pk>/", views.crf_verify,
         name="crf_verify"),
    path("source-data-verification/", views.sdv_progress, name="sdv_progress"),
]
