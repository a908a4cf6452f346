from django.db import migrations, models
from django.db.models import F


def enabled_since_creation(apps, schema_editor):
    """An automation enabled today has been since it was made, as far as anyone can tell."""
    Automation = apps.get_model("automations", "Automation")
    Automation.objects.filter(enabled=True).update(enabled_since=F("created"))


class Migration(migrations.Migration):
    dependencies = [
        ("automations", "0005_resolve"),
    ]

    operations = [
        migrations.AddField(
            model_name="automation",
            name="enabled_since",
            field=models.DateTimeField(blank=True, editable=False, null=True),
        ),
        migrations.RunPython(enabled_since_creation, migrations.RunPython.noop),
    ]
