from django.db import migrations


def seed(apps, schema_editor):
    from sandboxes.netsuite.seed import seed_catalog

    seed_catalog(apps)


class Migration(migrations.Migration):
    dependencies = [("netsuite_sandbox", "0001_initial")]

    operations = [migrations.RunPython(seed, migrations.RunPython.noop)]
