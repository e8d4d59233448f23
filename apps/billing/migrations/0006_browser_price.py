"""The default price of browser time (the browser node and agents' browser tools): 0.01 credits a minute."""

from django.db import migrations

MICRO = 1_000_000


def seed(apps, schema_editor):
    UnitPrice = apps.get_model("billing", "UnitPrice")
    UnitPrice.objects.get_or_create(subject="node", name="browser", defaults={"per_minute": MICRO // 100})


class Migration(migrations.Migration):
    dependencies = [("billing", "0005_fallback_price")]

    operations = [migrations.RunPython(seed, migrations.RunPython.noop)]
