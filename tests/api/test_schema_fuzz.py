"""
Property-based: schemathesis generates requests for every operation of `/api/schema/` (with a
key holding every scope) and checks that none gets a server error and every answer matches the
schema (status code, content type, body). `SCHEMATHESIS_MAX_EXAMPLES` bounds the examples per
operation (`.ci/run` sets it).
"""

from __future__ import annotations

import os

import pytest
import schemathesis
from django.core.signals import request_finished, request_started
from django.core.wsgi import get_wsgi_application
from django.db import close_old_connections
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from apps.users.services import api_key_create
from tests.billing.stripe_server import StripeServer
from tests.factories import UserFactory, published

MAX_EXAMPLES = int(os.environ.get("SCHEMATHESIS_MAX_EXAMPLES", "15"))
CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance]


@pytest.fixture(autouse=True)
def _keep_the_test_connection(db):
    # Requests go through the real WSGI handler, which would close the test's database connection
    # after each one; Django's test client suspends the same signal handlers.
    request_started.disconnect(close_old_connections)
    request_finished.disconnect(close_old_connections)
    yield
    request_started.connect(close_old_connections)
    request_finished.connect(close_old_connections)


@pytest.fixture(autouse=True)
def _payments(settings):
    # Payments configured against the loopback Stripe: without keys checkout and the webhook
    # answer 503 by design, which the server-error check would count as failures.
    with StripeServer(api_key="sk_test_fuzz") as loopback:
        settings.STRIPE_SECRET_KEY = "sk_test_fuzz"
        settings.STRIPE_WEBHOOK_SECRET = "whsec_fuzz"
        settings.STRIPE_API_BASE = loopback.url
        yield


@pytest.fixture
def key(db) -> str:
    owner = UserFactory(username="fuzzer")
    # Something to find: generated ids sometimes hit an existing object.
    published(owner, [("in", "input", {"name": "t"}), ("o", "output", {"name": "o"})], [("in", "value", "o", "value")])
    return api_key_create(owner=owner, name="fuzz", scopes=["read", "write", "execute"])[1]


# Loaded when the tests are collected: drf-spectacular builds it without the database.
schema = schemathesis.openapi.from_wsgi("/api/schema/", get_wsgi_application())


@schema.parametrize()
@settings(
    max_examples=MAX_EXAMPLES,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow, HealthCheck.filter_too_much],
)
def test_no_operation_fails_or_breaks_its_schema(case, key):
    case.call_and_validate(headers={"Authorization": f"Bearer {key}"}, checks=CHECKS)
