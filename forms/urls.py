"""The CRF pages under /casebook/, one URL module per part of forms/. The review part comes
before data entry: ``.../visits/<pk>/sign/`` must not be read as a CRF code."""

from forms.entry.urls import urlpatterns as entry_urls
from forms.quality.urls import urlpatterns as quality_urls
from forms.review.urls import urlpatterns as review_urls

app_name = "forms"
urlpatterns = [*quality_urls, *review_urls, *entry_urls]
