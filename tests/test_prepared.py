"""edc.prepared: a query built once by the ORM gives, with new values, what the ORM gives."""

import pytest
from django.db import models

from edc.models import Site
from edc.prepared import PreparedQuery, PreparedQueryError
from tests.factories import SiteFactory

pytestmark = pytest.mark.django_db


def _sites_like(built: list):
    def build(site_id: int, other_id: int | None):
        built.append((site_id, other_id))
        # other_id None: "pk IS NULL", another SQL than "pk = %s".
        return (Site.objects.filter(pk=site_id)
                .annotate(other=models.Exists(Site.objects.filter(pk=other_id)))
                .values_list("code", "other"))
    return build


def test_the_rows_are_the_orms_for_every_value_and_the_query_is_built_once_per_shape():
    built: list = []
    query = PreparedQuery(_sites_like(built))
    first, second = SiteFactory(code="A01"), SiteFactory(code="B02")
    expected = {
        (first.pk, second.pk): [("A01", True)],
        (second.pk, first.pk): [("B02", True)],
        (second.pk, second.pk + 1000): [("B02", False)],
        (first.pk, None): [("A01", False)],
        (second.pk + 1000, first.pk): [],
    }
    for (site_id, other_id), rows in expected.items():
        orm = list(_sites_like([])(site_id, other_id))
        assert orm == rows
        assert query.rows(site_id=site_id, other_id=other_id) == rows
        # Booleans come back as booleans (SQLite answers 0 or 1; the ORM converts).
        assert all(type(value) is bool for row in rows for value in row[1:])
    # Built once with integers in the arguments' places, once with None in other_id's.
    assert len(built) == 2
    assert query.first(site_id=first.pk, other_id=None) == ("A01", False)
    assert query.first(site_id=second.pk + 1000, other_id=None) is None


def test_an_argument_the_sql_does_not_carry_is_refused():
    query = PreparedQuery(lambda site_id: Site.objects.filter(code="A01").values_list("pk"))
    with pytest.raises(PreparedQueryError, match="site_id"):
        query.rows(site_id=1)


def test_a_list_argument_takes_any_length_and_instances_are_the_orms():
    sites = [SiteFactory(code=f"L{n:02d}") for n in range(4)]
    query = PreparedQuery(lambda pks: Site.objects.filter(pk__in=pks).order_by("code"))
    for chosen in (sites[:1], sites[1:], [sites[3], sites[0]], sites[:2]):
        pks = [site.pk for site in chosen]
        found = query.instances(pks=pks)
        expected = list(Site.objects.filter(pk__in=pks).order_by("code"))
        assert found == expected
        assert [vars(a) | {"_state": None} for a in found] == \
            [vars(b) | {"_state": None} for b in expected]
        assert all(not site._state.adding and site._state.db == "default" for site in found)


def test_instances_refuse_a_query_of_values_or_related_rows():
    with pytest.raises(PreparedQueryError, match="plain queryset"):
        PreparedQuery(lambda pk: Site.objects.filter(pk=pk).values_list("code")).instances(
            pk=SiteFactory().pk)
    with pytest.raises(PreparedQueryError, match="plain queryset"):
        PreparedQuery(lambda pk: Site.objects.filter(pk=pk).only("code")).instances(
            pk=SiteFactory().pk)


def test_instances_carry_their_annotations():
    first, second = SiteFactory(code="N01"), SiteFactory(code="N02")
    query = PreparedQuery(lambda pk, other_id: Site.objects.filter(pk=pk).annotate(
        other=models.Exists(Site.objects.filter(pk=other_id))))
    [found] = query.instances(pk=first.pk, other_id=second.pk)
    assert (found, found.other) == (first, True)
    [found] = query.instances(pk=second.pk, other_id=second.pk + 1000)
    assert (found, found.other) == (second, False)


@pytest.mark.django_db(transaction=True)
def test_a_locking_read_outside_a_transaction_is_refused_every_time():
    """As the ORM refuses ``select_for_update`` in autocommit: also once the SQL is kept."""
    from django.db import connection, transaction
    from django.db.transaction import TransactionManagementError

    site = SiteFactory(code="T01")
    query = PreparedQuery(lambda pk: Site.objects.filter(pk=pk).select_for_update())
    with transaction.atomic():
        assert query.instances(pk=site.pk) == [site]
    if not connection.features.has_select_for_update:
        return  # SQLite takes no row locks: nothing to refuse
    for _ in range(2):
        with pytest.raises(TransactionManagementError):
            query.instances(pk=site.pk)
