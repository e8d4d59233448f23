"""The plan new users join (and existing users when they first start a run), so they can run at once."""

from django.db import migrations

MICRO = 1_000_000


def seed(apps, schema_editor):
    Plan = apps.get_model("billing", "Plan")
    if not Plan.objects.filter(is_default=True).exists():
        Plan.objects.get_or_create(
            name="Free",
            defaults={
                "monthly_grant": 10 * MICRO,
                "max_concurrent_runs": 20,
                "max_runs_per_day": 1000,
                "max_run_seconds": 3600,
                "is_default": True,
            },
        )


class Migration(migrations.Migration):
    dependencies = [("billing", "0003_plans_and_subscriptions")]

    operations = [migrations.RunPython(seed, migrations.RunPython.noop)]
