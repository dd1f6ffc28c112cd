"""Why an active job waits becomes a field (wait_reason) instead of being
read out of the phase text. Active rows get it from their phase, the way
the card used to read it."""

from django.db import migrations, models

RETRYING = ", retrying in "


def fill_wait_reason(apps, schema_editor):
    Generation = apps.get_model("generations", "Generation")
    active = Generation.objects.filter(status__in=("queued", "submitting", "running"))
    active.filter(phase__contains=RETRYING, phase__startswith="waiting for rate limit").update(
        wait_reason="rate_limit")
    active.filter(phase__contains=RETRYING).exclude(phase__startswith="waiting for rate limit").update(
        wait_reason="backoff")
    active.filter(status="running", phase__in=("submitted", "generating")).update(wait_reason="polling")


class Migration(migrations.Migration):

    dependencies = [
        ('generations', '0001_initial'),
    ]

    operations = [
        migrations.AddField(
            model_name='generation',
            name='wait_reason',
            field=models.CharField(blank=True, choices=[('', 'Not waiting'), ('rate_limit', 'Waiting for a rate limit'), ('backoff', 'Retrying after an error'), ('polling', 'Provider still generating')], default='', max_length=12),
        ),
        migrations.RunPython(fill_wait_reason, migrations.RunPython.noop),
    ]
