"""What a finished node costs: tokens at its model's price in force at the time, plus per-call prices."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from apps.billing.models import MICRO, ModelPrice, UnitPrice
from apps.billing.services import node_cost

pytestmark = pytest.mark.django_db

NOW = timezone.now()


@pytest.fixture(autouse=True)
def _no_seeded_prices():
    # Each test states the prices it needs; the defaults are checked on their own below.
    ModelPrice.objects.all().delete()
    UnitPrice.objects.all().delete()


def usage(model="gpt-x", provider="openai", tokens_in=1000, tokens_out=500, **extra) -> dict:
    return {"provider": provider, "model": model, "input_tokens": tokens_in, "output_tokens": tokens_out, **extra}


def price(model="gpt-x", provider="openai", per_in=2, per_out=8, since_days=30, until_days=None) -> ModelPrice:
    return ModelPrice.objects.create(
        provider=provider,
        model=model,
        input_per_million=per_in * MICRO,
        output_per_million=per_out * MICRO,
        effective_from=NOW - timedelta(days=since_days),
        effective_to=None if until_days is None else NOW - timedelta(days=until_days),
    )


def test_tokens_are_charged_at_the_models_price_per_million():
    price()
    cost = node_cost(node_type="llm", usage=usage(), moment=NOW)
    # 1000 in at 2 credits per million + 500 out at 8 per million = 0.002 + 0.004 credits
    assert (cost.amount, cost.fallback) == (6_000, False)


def test_an_old_run_keeps_the_price_of_its_time():
    price(per_in=1, per_out=1, since_days=60, until_days=10)
    price(per_in=10, per_out=10, since_days=10)
    assert node_cost(node_type="llm", usage=usage(), moment=NOW - timedelta(days=20)).amount == 1_500
    assert node_cost(node_type="llm", usage=usage(), moment=NOW).amount == 15_000


def test_a_providers_wildcard_price_covers_its_other_models():
    price(model="*", per_in=1, per_out=1)
    price(model="gpt-x", per_in=3, per_out=3)
    assert node_cost(node_type="llm", usage=usage(model="gpt-y"), moment=NOW).amount == 1_500
    assert node_cost(node_type="llm", usage=usage(model="gpt-x"), moment=NOW).amount == 4_500


def test_an_unknown_model_is_charged_the_fallback_price_and_flagged(settings):
    settings.BILLING_FALLBACK_PER_MILLION = 30
    cost = node_cost(node_type="llm", usage=usage(model="mystery"), moment=NOW)
    assert (cost.amount, cost.fallback) == (45_000, True)
    assert "fallback price" in cost.lines[0]


def test_fractions_of_a_micro_credit_round_up_never_down():
    price(per_in=1, per_out=0)
    # 1 token at 1 credit per million = 1 micro-credit exactly; 1 token at 0.5 would still cost 1.
    ModelPrice.objects.update(input_per_million=MICRO // 2)
    assert node_cost(node_type="llm", usage=usage(tokens_in=1, tokens_out=0), moment=NOW).amount == 1


def test_per_call_prices_of_node_types_and_tool_calls_add_up():
    price()
    UnitPrice.objects.create(subject="node", name="http_request", per_call=100)
    UnitPrice.objects.create(subject="tool", name="*", per_call=50)
    assert node_cost(node_type="http_request", usage={}, moment=NOW).amount == 100
    agent = node_cost(node_type="agent", usage=usage(tool_calls=3), moment=NOW)
    assert agent.amount == 6_000 + 3 * 50
    assert node_cost(node_type="template", usage={}, moment=NOW).amount == 0


def test_installations_start_with_default_prices():
    from importlib import import_module

    from django.apps import apps

    import_module("apps.billing.migrations.0002_default_prices").seed(apps, None)
    now = timezone.now()
    scripted = node_cost(node_type="llm", usage=usage(provider="scripted", model="scripted-1"), moment=now)
    assert (scripted.amount, scripted.fallback) == (2_000, False)
    assert node_cost(node_type="llm", usage=usage(provider="ollama", model="llama3"), moment=now).amount == 0
    import_module("apps.billing.migrations.0006_browser_price").seed(apps, None)
    assert node_cost(node_type="browser", usage={"browser_seconds": 120}, moment=now).amount == 2 * MICRO // 100


def test_browser_time_is_charged_per_minute_pro_rata_rounded_up():
    UnitPrice.objects.create(subject="node", name="browser", per_minute=MICRO // 100)  # the seeded default
    assert node_cost(node_type="browser", usage={"browser_seconds": 60}, moment=NOW).amount == 10_000
    assert node_cost(node_type="browser", usage={"browser_seconds": 0.0071}, moment=NOW).amount == 2  # 1.18 -> 2
    # An agent's browser tools count the same way, whatever the node type.
    cost = node_cost(node_type="agent", usage={"browser_seconds": 30}, moment=NOW)
    assert (cost.amount, cost.lines) == (5_000, ("30.0 s of browser",))
    assert node_cost(node_type="browser", usage={}, moment=NOW).amount == 0
