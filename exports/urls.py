from django.urls import path

from exports import views

app_name = "exports"
urlpatterns = [
    path("", views.exports, name="exports"),
    path("dictionary/", views.dictionary, name="dictionary"),
    path("<int:pk>/", views.detail, name="detail"),
    path("<int:pk>/download/", views.download, name="download"),
]
