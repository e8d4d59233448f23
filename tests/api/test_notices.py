"""`notices/`: the user's in-app notices, newest first; unread filter and count; marking read; ownership; scopes."""

from __future__ import annotations

from datetime import timedelta

import factory
import pytest
from django.utils import timezone

from apps.users.models import AuditEntry, Notice
from tests.api.conftest import error

pytestmark = pytest.mark.django_db

URL = "/api/v1/notices/"
FIELDS = {"id", "kind", "title", "body", "link", "created_at", "read_at"}


class NoticeFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Notice

    kind = Notice.Kind.LOW_BALANCE
    title = factory.Sequence(lambda n: f"notice {n}")
    body = "Your balance is low."


def notices_at(user, *ages_in_minutes: int, **fields) -> list[Notice]:
    now = timezone.now()
    return [NoticeFactory(user=user, created_at=now - timedelta(minutes=age), **fields) for age in ages_in_minutes]


def titles(response) -> list[str]:
    assert response.status_code == 200, response.content
    return [item["title"] for item in response.json()["results"]]


# --- Listing -------------------------------------------------------------------------------------


def test_it_lists_the_users_notices_newest_first(api, owner, stranger):
    old, new, middle = notices_at(owner, 30, 1, 10)
    notices_at(stranger, 5)
    response = api.get(URL)
    assert titles(response) == [new.title, middle.title, old.title]
    item = response.json()["results"][0]
    assert set(item) == FIELDS
    assert item["kind"] == "low_balance"
    assert item["read_at"] is None


def test_unread_true_lists_only_unread_ones_and_false_only_read_ones(api, owner):
    [unread] = notices_at(owner, 1)
    [read] = notices_at(owner, 2, read_at=timezone.now())
    assert titles(api.get(URL, {"unread": "true"})) == [unread.title]
    assert titles(api.get(URL, {"unread": "false"})) == [read.title]
    assert titles(api.get(URL)) == [unread.title, read.title]


def test_a_malformed_filter_is_a_400_naming_it(api):
    response = api.get(URL, {"unread": "maybe"})
    assert (response.status_code, list(error(response)["fields"])) == (400, ["unread"])


def test_the_list_is_paged_by_cursor(api, owner):
    made = notices_at(owner, *range(5))
    first = api.get(URL, {"page_size": 2}).json()
    second = api.get(first["next"]).json()
    assert [item["title"] for item in first["results"] + second["results"]] == [n.title for n in made[:4]]


def test_the_unread_count_counts_only_the_users_unread_notices(api, owner, stranger):
    notices_at(owner, 1, 2, 3)
    notices_at(owner, 4, read_at=timezone.now())
    notices_at(stranger, 1)
    response = api.get(f"{URL}unread-count/")
    assert (response.status_code, response.json()) == (200, {"unread_count": 3})


def test_the_list_costs_the_same_few_queries_for_2_or_30_notices(api, owner, django_assert_num_queries):
    notices_at(owner, 1, 2)
    api.get(URL)  # the key's first use is recorded once: not part of the count
    with django_assert_num_queries(2):  # the key (with its owner), the page
        assert len(titles(api.get(URL, {"page_size": 100}))) == 2
    notices_at(owner, *range(3, 31))
    with django_assert_num_queries(2):
        assert len(titles(api.get(URL, {"page_size": 100, "unread": "true"}))) == 30


def test_the_unread_count_costs_one_query_beside_the_key(api, owner, django_assert_num_queries):
    notices_at(owner, 1, 2)
    api.get(URL)
    with django_assert_num_queries(2):
        api.get(f"{URL}unread-count/")


# --- Marking read --------------------------------------------------------------------------------


def test_marking_one_read_keeps_the_first_time(api, owner):
    notice, other = notices_at(owner, 1, 2)
    response = api.post(f"{URL}{notice.pk}/read/")
    assert response.status_code == 200
    body = response.json()
    assert set(body) == FIELDS
    assert body["read_at"] is not None
    notice.refresh_from_db()
    first_read = notice.read_at
    assert first_read is not None
    again = api.post(f"{URL}{notice.pk}/read/")
    assert again.status_code == 200
    notice.refresh_from_db()
    assert notice.read_at == first_read
    other.refresh_from_db()
    assert other.read_at is None
    assert api.get(f"{URL}unread-count/").json() == {"unread_count": 1}


def test_reading_all_marks_only_the_users_unread_notices(api, owner, stranger):
    notices_at(owner, 1, 2)
    [already] = notices_at(owner, 3, read_at=timezone.now() - timedelta(days=1))
    [theirs] = notices_at(stranger, 1)
    response = api.post(f"{URL}read-all/")
    assert (response.status_code, response.json()) == (200, {"marked": 2})
    assert not Notice.objects.filter(user=owner, read_at__isnull=True).exists()
    assert Notice.objects.get(pk=already.pk).read_at == already.read_at
    assert Notice.objects.get(pk=theirs.pk).read_at is None
    assert api.post(f"{URL}read-all/").json() == {"marked": 0}


def test_marking_read_is_audited(api, owner):
    [notice] = notices_at(owner, 1)
    api.post(f"{URL}{notice.pk}/read/")
    entry = AuditEntry.objects.get()
    assert (entry.action, entry.object_type, entry.object_id) == ("notice.read", "users.notice", str(notice.pk))


# --- Ownership and scopes ------------------------------------------------------------------------


def test_another_users_notice_is_404(api, stranger):
    [theirs] = notices_at(stranger, 1)
    for response in (api.get(f"{URL}{theirs.pk}/"), api.post(f"{URL}{theirs.pk}/read/")):
        assert (response.status_code, error(response)["code"]) == (404, "not_found")
    assert Notice.objects.get(pk=theirs.pk).read_at is None


def test_one_notice_can_be_read_by_its_owner(api, owner):
    [notice] = notices_at(owner, 1)
    response = api.get(f"{URL}{notice.pk}/")
    assert (response.status_code, response.json()["title"]) == (200, notice.title)


def test_listing_and_counting_need_the_read_scope(api_with, owner):
    notices_at(owner, 1)
    reader, writer = api_with("read"), api_with("write")
    assert reader.get(URL).status_code == 200
    assert reader.get(f"{URL}unread-count/").status_code == 200
    for response in (writer.get(URL), writer.get(f"{URL}unread-count/")):
        assert (response.status_code, error(response)["code"]) == (403, "missing_scope")


def test_marking_read_needs_the_write_scope(api_with, owner):
    [notice] = notices_at(owner, 1)
    reader, writer = api_with("read"), api_with("write")
    for response in (reader.post(f"{URL}{notice.pk}/read/"), reader.post(f"{URL}read-all/")):
        assert response.status_code == 403
        assert error(response) == {
            "code": "missing_scope",
            "message": "The API key lacks the 'write' scope.",
            "fields": {},
        }
    assert Notice.objects.get(pk=notice.pk).read_at is None
    assert writer.post(f"{URL}{notice.pk}/read/").status_code == 200


def test_anonymous_requests_are_refused(client):
    response = client.get(URL)
    assert (response.status_code, error(response)["code"]) == (401, "not_authenticated")
