"""A balance falling below BILLING_LOW_BALANCE_MICRO gives one in-app notice and one email per crossing."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime

import dramatiq
import pytest
from django.core import mail
from django.db import connection
from django.test.utils import CaptureQueriesContext

from apps.billing import notices, services, tasks
from apps.billing.models import MICRO
from apps.users.models import Notice
from tests.factories import UserFactory

pytestmark = pytest.mark.django_db

keys = itertools.count()


def move(user, amount: int) -> None:
    kind = "grant" if amount > 0 else "usage"
    services.ledger_post(user=user, kind=kind, amount=amount, idempotency_key=f"test:{next(keys)}")


@pytest.fixture(autouse=True)
def _threshold(settings):
    settings.BILLING_LOW_BALANCE_MICRO = MICRO


@pytest.fixture
def sent_inline(monkeypatch):
    """Messages to the email actor are handled at once, in this thread, instead of by a worker."""
    monkeypatch.setattr(tasks.send_low_balance_email, "send", lambda *args: tasks.send_low_balance_email(*args))


@pytest.fixture
def committed(django_capture_on_commit_callbacks, sent_inline):
    """`with committed():` runs what the movements inside leave for after commit, as a commit would."""
    return lambda: django_capture_on_commit_callbacks(execute=True)


def low_balance_notices(user) -> list[Notice]:
    return list(Notice.objects.filter(user=user, kind="low_balance").order_by("pk"))


# --- Crossings -----------------------------------------------------------------------------------


def test_falling_below_the_threshold_gives_one_notice_and_one_email(committed):
    user = UserFactory(username="ada", display_name="Ada")
    with committed():
        move(user, 3 * MICRO)
        move(user, -MICRO)  # 2 left: still above
        assert not low_balance_notices(user)
        move(user, -1_500_000)  # 0.5 left: crosses
    [notice] = low_balance_notices(user)
    assert notice.title == "Your balance is low: 0.5 credits"
    assert "fell to 0.5 credits, below 1." in notice.body
    assert "credit pack" in notice.body
    assert notice.read_at is None
    assert notice.emailed_at is not None
    [email] = mail.outbox
    assert email.to == ["ada@example.com"]
    assert email.subject == "[Switchboard] Your balance is low: 0.5 credits"
    assert "Hello Ada," in email.body
    assert "your Switchboard balance fell to 0.5 credits, below 1 credits." in email.body
    assert "buy a credit pack" in email.body


def test_movements_that_stay_below_give_nothing_more(committed):
    user = UserFactory()
    with committed():
        move(user, 2 * MICRO)
        move(user, -1_200_000)  # 0.8: crosses
        move(user, -300_000)  # 0.5: further below
        move(user, 400_000)  # 0.9: up, still below
        move(user, -2 * MICRO)  # -1.1: further below
    assert len(low_balance_notices(user)) == 1
    assert len(mail.outbox) == 1


def test_going_back_above_and_falling_again_is_a_new_crossing(committed):
    user = UserFactory()
    with committed():
        move(user, 2 * MICRO)
        move(user, -1_500_000)  # 0.5: crosses
        move(user, 5 * MICRO)  # 5.5: back above
        move(user, -5_200_000)  # 0.3: crosses again
    assert [notice.title for notice in low_balance_notices(user)] == [
        "Your balance is low: 0.5 credits",
        "Your balance is low: 0.3 credits",
    ]
    assert [email.subject for email in mail.outbox] == [
        "[Switchboard] Your balance is low: 0.5 credits",
        "[Switchboard] Your balance is low: 0.3 credits",
    ]


def test_a_balance_that_starts_below_and_goes_further_gives_nothing(committed):
    user = UserFactory()
    with committed():
        move(user, 500_000)  # from 0 up to 0.5: never above
        move(user, -MICRO)
    assert not low_balance_notices(user)
    assert not mail.outbox


def test_the_threshold_itself_is_not_below_it(committed):
    user = UserFactory()
    with committed():
        move(user, 3 * MICRO)
        move(user, -2 * MICRO)  # exactly 1: not below
        assert not low_balance_notices(user)
        move(user, -1)  # from exactly the threshold to just under it: crosses
    [notice] = low_balance_notices(user)
    assert notice.title == "Your balance is low: 0.999999 credits"


def test_the_threshold_comes_from_the_settings(committed, settings):
    settings.BILLING_LOW_BALANCE_MICRO = 10 * MICRO
    user = UserFactory()
    with committed():
        move(user, 12 * MICRO)
        move(user, -3 * MICRO)
    [notice] = low_balance_notices(user)
    assert "below 10." in notice.body


def test_the_same_crossing_reported_again_after_commit_gives_no_second_notice(committed):
    # The engine may report a node's charge again after it commits: the ledger row names the crossing.
    user = UserFactory()
    with committed():
        move(user, 2 * MICRO)
        move(user, -1_500_000)
        notices.balance_moved(user_id=user.pk, before=2 * MICRO, after=500_000)
    assert len(low_balance_notices(user)) == 1
    assert len(mail.outbox) == 1


def test_a_crossing_outside_the_ledger_still_gives_a_notice(committed):
    user = UserFactory()
    with committed():
        notices.balance_moved(user_id=user.pk, before=MICRO, after=0)
    assert len(low_balance_notices(user)) == 1
    assert len(mail.outbox) == 1


@pytest.mark.parametrize(
    ("before", "after"),
    [
        (5 * MICRO, 4 * MICRO),  # above, stays above
        (MICRO, MICRO),  # at the threshold
        (500_000, 100_000),  # below, further below
        (100_000, 500_000),  # below, up but still below
        (500_000, 2 * MICRO),  # crossing upwards
        (-MICRO, 3 * MICRO),
    ],
)
def test_a_movement_that_does_not_cross_downwards_costs_no_query(django_assert_num_queries, before, after):
    with django_assert_num_queries(0):
        notices.balance_moved(user_id=1, before=before, after=after)


def test_a_crossing_adds_a_fixed_few_queries_to_its_movement():
    user = UserFactory()
    move(user, 2 * MICRO)
    with CaptureQueriesContext(connection) as plain:
        move(user, -100_000)  # 1.9: no crossing
    with CaptureQueriesContext(connection) as crossing:
        move(user, -1_500_000)  # 0.4: crosses
    # The user, the crossing's ledger row, the duplicate check, and the insert in its savepoint (3).
    assert len(crossing) - len(plain) == 6


# --- The email -----------------------------------------------------------------------------------


def test_the_email_is_in_the_users_language_and_time_zone(django_capture_on_commit_callbacks, sent_inline):
    user = UserFactory(language="zh-hans", time_zone="Asia/Shanghai")
    with django_capture_on_commit_callbacks() as callbacks:
        move(user, 2 * MICRO)
        move(user, -1_500_000)
    Notice.objects.filter(user=user).update(created_at=datetime(2030, 1, 2, 16, 30, tzinfo=UTC))
    for callback in callbacks:
        callback()
    [email] = mail.outbox
    assert email.to == [user.email]
    assert "2030年1月3日 00:30" in email.body  # Chinese date format, Shanghai time


def test_the_email_follows_the_platform_defaults_when_the_user_has_none(
    django_capture_on_commit_callbacks, sent_inline, settings
):
    settings.TIME_ZONE = "America/New_York"
    user = UserFactory(language="", time_zone="")
    with django_capture_on_commit_callbacks() as callbacks:
        move(user, 2 * MICRO)
        move(user, -1_500_000)
    Notice.objects.filter(user=user).update(created_at=datetime(2030, 1, 2, 16, 30, tzinfo=UTC))
    for callback in callbacks:
        callback()
    [email] = mail.outbox
    assert "On Jan. 2, 2030, 11:30 a.m. your Switchboard balance" in email.body


def test_text_is_not_html_escaped(committed):
    user = UserFactory(display_name="Tom & <Jerry>")
    with committed():
        move(user, 2 * MICRO)
        move(user, -1_500_000)
    assert "Hello Tom & <Jerry>," in mail.outbox[0].body


def test_a_user_without_an_email_address_gets_only_the_notice(django_capture_on_commit_callbacks, sent_inline):
    user = UserFactory(email="", verified_email=False)
    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        move(user, 2 * MICRO)
        move(user, -1_500_000)
    assert len(low_balance_notices(user)) == 1
    assert not callbacks
    assert not mail.outbox


def test_an_address_removed_before_the_email_is_sent_gets_nothing(django_capture_on_commit_callbacks, sent_inline):
    user = UserFactory()
    with django_capture_on_commit_callbacks() as callbacks:
        move(user, 2 * MICRO)
        move(user, -1_500_000)
    type(user).objects.filter(pk=user.pk).update(email="")
    for callback in callbacks:
        callback()
    assert not mail.outbox
    assert low_balance_notices(user)[0].emailed_at is None


def test_the_actor_run_twice_sends_one_email(committed):
    user = UserFactory()
    with committed():
        move(user, 2 * MICRO)
        move(user, -1_500_000)
    [notice] = low_balance_notices(user)
    tasks.send_low_balance_email(notice.pk, 500_000)  # a second delivery of the same message
    assert len(mail.outbox) == 1


def test_a_failed_send_is_released_for_the_retry(django_capture_on_commit_callbacks, sent_inline, monkeypatch):
    user = UserFactory()
    with django_capture_on_commit_callbacks():  # captured, not run: the test sends by hand
        move(user, 2 * MICRO)
        move(user, -1_500_000)
    [notice] = low_balance_notices(user)

    def refused(*args, **kwargs):
        raise OSError("connection refused")

    monkeypatch.setattr(notices, "send_mail", refused)
    with pytest.raises(OSError, match="connection refused"):
        tasks.send_low_balance_email(notice.pk, 500_000)
    notice.refresh_from_db()
    assert notice.emailed_at is None
    monkeypatch.undo()
    tasks.send_low_balance_email(notice.pk, 500_000)  # dramatiq's retry
    assert len(mail.outbox) == 1


def test_the_actor_declares_retries_and_a_time_limit():
    options = tasks.send_low_balance_email.options
    assert options["max_retries"] >= 1
    assert 0 < options["time_limit"] <= 5 * 60_000


# --- Operators ----------------------------------------------------------------------------------


@pytest.fixture
def operator(client):
    user = UserFactory(username="root", is_staff=True, is_superuser=True)
    client.force_login(user)
    return user


def test_operators_find_notices_by_user_kind_and_read_state_read_only(client, operator):
    alice, bob = UserFactory(username="alice"), UserFactory(username="bob")
    notices.balance_moved(user_id=alice.pk, before=MICRO, after=0)
    notices.balance_moved(user_id=bob.pk, before=MICRO, after=0)
    Notice.objects.filter(user=bob).mark_read()
    page = client.get("/admin/users/notice/", {"q": "alice@example"}).content.decode()
    assert "alice" in page
    assert ">bob<" not in page
    unread = client.get("/admin/users/notice/", {"read": "no", "kind__exact": "low_balance"})
    assert [notice.user.username for notice in unread.context["cl"].result_list] == ["alice"]
    notice = Notice.objects.get(user=alice)
    assert client.get("/admin/users/notice/add/").status_code == 403
    assert client.post(f"/admin/users/notice/{notice.pk}/change/", {"title": "changed"}).status_code == 403
    assert client.post(f"/admin/users/notice/{notice.pk}/delete/", {"post": "yes"}).status_code == 403
    assert client.get(f"/admin/users/notice/{notice.pk}/change/").status_code == 200


def test_the_notice_changelist_uses_a_fixed_number_of_queries(client, operator):
    def count_queries() -> int:
        with CaptureQueriesContext(connection) as queries:
            assert client.get("/admin/users/notice/").status_code == 200
        return len(queries)

    notices.balance_moved(user_id=UserFactory().pk, before=MICRO, after=0)
    baseline = count_queries()
    for _ in range(10):
        notices.balance_moved(user_id=UserFactory().pk, before=MICRO, after=0)
    assert count_queries() == baseline


# --- After a real commit --------------------------------------------------------------------------


@pytest.mark.django_db(transaction=True)
def test_a_broker_that_is_down_does_not_fail_the_movement(monkeypatch):
    def down(*args, **kwargs):
        raise ConnectionError("broker down")

    monkeypatch.setattr(tasks.send_low_balance_email, "send", down)
    user = UserFactory()
    move(user, 2 * MICRO)
    move(user, -1_500_000)  # commits, then the send fails: logged, not raised
    assert services.balance_of(user) == 500_000
    assert len(low_balance_notices(user)) == 1


@pytest.mark.django_db(transaction=True)
def test_the_email_goes_through_the_configured_broker_and_a_worker():
    user = UserFactory(username="grace")
    broker = dramatiq.get_broker()
    broker.flush("email")
    # Its own queue only: a worker stopped with other tests' messages in hand would strand them.
    worker = dramatiq.Worker(broker, queues={"email"}, worker_threads=1, worker_timeout=100)
    worker.start()
    try:
        move(user, 2 * MICRO)
        move(user, -1_500_000)
        broker.join("email", timeout=20_000)
        worker.join()
    finally:
        worker.stop()
    [email] = mail.outbox
    assert email.to == ["grace@example.com"]
    assert low_balance_notices(user)[0].emailed_at is not None
