from django.conf import settings

from edc import protocol


def trial(request) -> dict:
    return {"trial_name": settings.TRIAL_NAME, "trial_registry_id": protocol.TRIAL_REGISTRY_ID}
