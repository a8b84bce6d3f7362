from django.urls import path

from forms import audit_views, query_views, signoff_views, views

app_name = "forms"
urlpatterns = [
    path("matrix/", views.matrix, name="matrix"),
    path("edit-checks/", views.edit_checks, name="edit_checks"),
    path("queries/", query_views.query_list, name="query_list"),
    path("queries/<int:query_pk>/<str:action>/", query_views.query_act, name="query_act"),
    path("subjects/<int:subject_pk>/queries/<str:kind>/<int:pk>/", query_views.query_new,
         name="query_new"),
    path("subjects/<int:subject_pk>/verify/<str:crf_code>/<int:pk>/", query_views.crf_verify,
         name="crf_verify"),
    path("audit-trail/", audit_views.audit_trail, name="audit_trail"),
    path("source-data-verification/", query_views.sdv_progress, name="sdv_progress"),
    path("subjects/<int:subject_pk>/sign/", signoff_views.sign, name="sign"),
    path("subjects/<int:subject_pk>/visits/<int:visit_pk>/sign/", signoff_views.sign,
         name="sign_visit"),
    path("locks/", signoff_views.locks_page, name="locks"),
    path("subjects/<int:subject_pk>/casebook.pdf", signoff_views.casebook_pdf,
         name="casebook_pdf"),
    path("locks/new/", signoff_views.lock, name="lock"),
    path("subjects/<int:subject_pk>/visits/<int:visit_pk>/", views.visit_update,
         name="visit_update"),
    path("subjects/<int:subject_pk>/", views.casebook, name="casebook"),
    path("subjects/<int:subject_pk>/eligibility/", views.eligibility, name="eligibility"),
    path("subjects/<int:subject_pk>/randomize/", views.randomize, name="randomize"),
    path("subjects/<int:subject_pk>/visits/<int:visit_pk>/<str:crf_code>/", views.crf_edit,
         name="visit_crf"),
    path("subjects/<int:subject_pk>/visits/<int:visit_pk>/<str:crf_code>/<str:slot>/",
         views.crf_edit, name="visit_crf_slot"),
    path("subjects/<int:subject_pk>/logs/<str:crf_code>/new/", views.crf_edit, name="log_new"),
    path("subjects/<int:subject_pk>/logs/<str:crf_code>/<int:pk>/", views.crf_edit,
         name="log_edit"),
]
