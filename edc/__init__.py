"""The EDC project package and the study-wide core (sites, users, roles, the protocol)."""

from edc.celery import app as celery_app

__all__ = ["celery_app"]
