from django.urls import path

from forms.review import audit_views, views

urlpatterns = [
    path("audit-trail/", audit_views.audit_trail, name="audit_trail"),
    path("subjects/<int:subject_pk>/sign/", views.sign, name="sign"),
    path("subjects/<int:subject_pk>/visits/<int:visit_pk>/sign/", views.sign,
         name="sign_visit"),
    path("locks/", views.locks_page, name="locks"),
    path("subjects/<int:subject_pk>/casebook.pdf", views.casebook_pdf, name="casebook_pdf"),
    path("locks/new/", views.lock, name="lock"),
]
