from django.urls import path

from forms.entry import eligibility_views, views

urlpatterns = [
    path("matrix/", views.matrix, name="matrix"),
    path("subjects/<int:subject_pk>/visits/<int:visit_pk>/", views.visit_update,
         name="visit_update"),
    path("subjects/<int:subject_pk>/", views.casebook, name="casebook"),
    path("subjects/<int:subject_pk>/eligibility/", eligibility_views.eligibility,
         name="eligibility"),
    path("subjects/<int:subject_pk>/randomize/", eligibility_views.randomize,
         name="randomize"),
    path("subjects/<int:subject_pk>/visits/<int:visit_pk>/<str:crf_code>/", views.crf_edit,
         name="visit_crf"),
    path("subjects/<int:subject_pk>/visits/<int:visit_pk>/<str:crf_code>/<str:slot>/",
         views.crf_edit, name="visit_crf_slot"),
    path("subjects/<int:subject_pk>/logs/<str:crf_code>/new/", views.crf_edit, name="log_new"),
    path("subjects/<int:subject_pk>/logs/<str:crf_code>/<int:pk>/", views.crf_edit,
         name="log_edit"),
]
