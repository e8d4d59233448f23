"""
Default prices, so the demo and a fresh installation charge something sensible from the first run
(operators change them in the admin; a new row with a later `effective_from` keeps old runs' prices).
Amounts are micro-credits per million tokens, or per call; 1 credit is meant as about 1 US dollar.
"""

from django.db import migrations

MICRO = 1_000_000

MODEL_PRICES = [
    # provider, model, credits per million input tokens, per million output tokens
    ("scripted", "*", 1, 2),
    ("openai", "*", 2.5, 10),
    ("anthropic", "*", 3, 15),
    ("ollama", "*", 0, 0),  # runs on the operator's own hardware
]
UNIT_PRICES = [
    # subject, name, credits per call
    ("node", "http_request", 0.001),
    ("tool", "*", 0.0005),
]


def seed(apps, schema_editor):
    ModelPrice = apps.get_model("billing", "ModelPrice")
    UnitPrice = apps.get_model("billing", "UnitPrice")
    for provider, model, per_in, per_out in MODEL_PRICES:
        ModelPrice.objects.get_or_create(
            provider=provider,
            model=model,
            defaults={"input_per_million": int(per_in * MICRO), "output_per_million": int(per_out * MICRO)},
        )
    for subject, name, per_call in UNIT_PRICES:
        UnitPrice.objects.get_or_create(subject=subject, name=name, defaults={"per_call": int(per_call * MICRO)})


class Migration(migrations.Migration):
    dependencies = [("billing", "0001_ledger_and_prices")]

    operations = [migrations.RunPython(seed, migrations.RunPython.noop)]
