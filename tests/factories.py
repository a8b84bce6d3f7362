import datetime as dt

import factory
from django.utils import timezone

from edc.history import system_writes
from edc.models import Site, User
from edc.roles import Role
from visits import services
from visits.models import ConsentSigner, RandomizationSlot
from visits.randomization import generate_list

PASSWORD = "correct-horse-battery-9"


class _ConfigurationFactory(factory.django.DjangoModelFactory):
    """Sites and accounts as an administrator configured them before the test: the system's
    writes (``system_writes``), whose history rows have no author."""

    class Meta:
        abstract = True

    @classmethod
    def _create(cls, model_class, *args, **kwargs):
        with system_writes():
            return super()._create(model_class, *args, **kwargs)


class SiteFactory(_ConfigurationFactory):
    class Meta:
        model = Site
        django_get_or_create = ("code",)

    code = factory.Sequence(lambda n: f"S{n:02d}")
    name = factory.LazyAttribute(lambda o: f"Hospital {o.code}")
    time_zone = "Asia/Shanghai"


class UserFactory(_ConfigurationFactory):
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
        with system_writes():
            self.save()
            if create and extracted:
                self.sites.set(extracted)


def screened_subject(
    *,
    site: Site,
    user: User,
    consented_at: dt.datetime | None = None,
    birth_date: dt.date = dt.date(1962, 5, 17),
    consent: bool = True,
):
    """A patient in the screening log, consented unless ``consent`` is false."""
    consented_at = consented_at or timezone.now() - dt.timedelta(hours=3)
    subject = services.subject_screen(
        site=site,
        screened_at=consented_at - dt.timedelta(minutes=30),
        user=user,
        identity={"full_name": "Wang Fang", "birth_date": birth_date,
                  "hospital_record_number": "H123456", "phone": "13800000000"},
    )
    if consent:
        subject = services.subject_consent(
            subject=subject, consented_at=consented_at, signed_by=ConsentSigner.SUBJECT,
            form_version="v2.0 2026-01-15", user=user,
        )
    return subject


def randomization_list(site: Site, *, rows_per_stratum: int = 12, seed: int = 7) -> None:
    """Test data: a generated list for one site, saved directly."""
    for row in generate_list(site_codes=[site.code], rows_per_stratum=rows_per_stratum,
                             seed=seed + site.pk):
        with system_writes():
            RandomizationSlot.objects.create(
                site=site, stratum=row.stratum, sequence=row.sequence,
                block_number=row.block_number, block_size=row.block_size,
                randomization_number=f"{site.code}{row.randomization_number}", arm=row.arm,
                kit_1=f"{site.code}{row.kit_numbers[0]}", kit_2=f"{site.code}{row.kit_numbers[1]}",
                kit_3=f"{site.code}{row.kit_numbers[2]}", list_name="test",
            )


def randomized_subject(
    *, site: Site, user: User, randomized_at: dt.datetime | None = None, stratum: str = "8-14"
):
    """A subject allocated from the site's list, skipping the eligibility CRFs (tests of
    randomization itself go through ``forms.entry.services.subject_randomize``)."""
    if not RandomizationSlot.objects.filter(site=site).exists():
        randomization_list(site)
    randomized_at = randomized_at or timezone.now() - dt.timedelta(hours=1)
    subject = screened_subject(
        site=site, user=user, consented_at=randomized_at - dt.timedelta(hours=2)
    )
    return services.randomization_allocate(
        subject=subject, stratum=stratum, randomized_at=randomized_at, user=user
    )
