import datetime as dt

import factory
from django.utils import timezone

from edc.models import Site, User
from edc.roles import Role
from visits import services

PASSWORD = "correct-horse-battery-9"


class SiteFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Site
        django_get_or_create = ("code",)

    code = factory.Sequence(lambda n: f"S{n:02d}")
    name = factory.LazyAttribute(lambda o: f"Hospital {o.code}")
    time_zone = "Asia/Shanghai"


class UserFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = User
        skip_postgeneration_save = True

    username = factory.Sequence(lambda n: f"user{n}")
    first_name = "Test"
    last_name = factory.Sequence(lambda n: f"User{n}")
    role = Role.SITE_STAFF
    password = factory.PostGenerationMethodCall("set_password", PASSWORD)

    @factory.post_generation
    def sites(self, create, extracted, **kwargs):
        self.save()
        if create and extracted:
            self.sites.set(extracted)


def screened_subject(*, site: Site, user: User, consented_at: dt.datetime | None = None):
    return services.subject_screen(
        site=site,
        consented_at=consented_at or timezone.now() - dt.timedelta(hours=3),
        user=user,
    )


def randomized_subject(
    *, site: Site, user: User, randomized_at: dt.datetime | None = None, subject_id: str = ""
):
    randomized_at = randomized_at or timezone.now() - dt.timedelta(hours=1)
    subject = screened_subject(
        site=site, user=user, consented_at=randomized_at - dt.timedelta(hours=2)
    )
    return services.subject_enrol(
        subject=subject,
        subject_id=subject_id or f"{site.code}-R{subject.pk:03d}",
        randomized_at=randomized_at,
        user=user,
    )
