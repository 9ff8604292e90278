"""The sandbox account gets the SALES-TAX item (billing-calculated tax is posted on it)."""

from django.db import migrations


def seed(apps, schema_editor):
    from sandboxes.netsuite.seed import seed_catalog

    seed_catalog(apps)  # creates only what is missing


class Migration(migrations.Migration):
    dependencies = [("netsuite_sandbox", "0002_seed_catalog")]

    operations = [migrations.RunPython(seed, migrations.RunPython.noop)]
