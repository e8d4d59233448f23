"""`node-types/`: the registry, for builders: what each type takes, gives and costs."""

from __future__ import annotations

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from apps.workflows.nodes import REGISTRY
from tests.api.conftest import error

pytestmark = pytest.mark.django_db

URL = "/api/v1/node-types/"


def test_it_lists_every_registered_type_with_its_schemas_unpaginated(api):
    response = api.get(URL)
    assert response.status_code == 200
    rows = response.json()
    assert [row["type"] for row in rows] == sorted(REGISTRY)
    for row in rows:
        assert set(row) == {
            "type",
            "description",
            "category",
            "config_schema",
            "inputs_schema",
            "outputs_schema",
            "cost",
        }
        assert row == REGISTRY[row["type"]].describe()
    template = next(row for row in rows if row["type"] == "template")
    assert template["category"] == "text"
    assert template["config_schema"]["required"] == ["template"]
    # The keys every node takes are part of each config schema.
    assert "timeout_seconds" in template["config_schema"]["properties"]
    assert template["outputs_schema"]["properties"] == {"text": {"type": "string"}}
    assert template["cost"] == {"basis": "none"}


def test_it_needs_the_read_scope_and_is_read_only(api_with):
    response = api_with("write").get(URL)
    assert (response.status_code, error(response)["code"]) == (403, "missing_scope")
    response = api_with("read", "write").post(URL, {"type": "teleport"})
    assert response.status_code == 405
    assert error(response)["code"] == "method_not_allowed"


def test_it_asks_the_database_only_who_is_calling(api):
    api.get(URL)  # the key's first use records when it was used
    with CaptureQueriesContext(connection) as captured:
        assert api.get(URL).status_code == 200
    assert len(captured) == 1
