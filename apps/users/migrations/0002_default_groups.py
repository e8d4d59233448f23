"""
Data migration: the two default groups, and the site's name in emails.

Permissions do not exist yet while migrations run (Django creates them after
migrate), so the Operators group receives its permissions from the users app's
post_migrate receiver (services.default_groups_sync), which also covers models
that later apps add.
"""

from django.db import migrations


def create_groups_and_name_site(apps, schema_editor):
    Group = apps.get_model("auth", "Group")
    for name in ("Operators", "Members"):
        Group.objects.get_or_create(name=name)
    Site = apps.get_model("sites", "Site")
    Site.objects.update_or_create(pk=1, defaults={"domain": "localhost:8000", "name": "Switchboard"})


def remove_groups(apps, schema_editor):
    apps.get_model("auth", "Group").objects.filter(name__in=["Operators", "Members"]).delete()


class Migration(migrations.Migration):
    dependencies = [
        ("users", "0001_initial"),
        ("auth", "0012_alter_user_first_name_max_length"),
        ("sites", "0002_alter_domain_unique"),
    ]

    operations = [migrations.RunPython(create_groups_and_name_site, remove_groups)]
