"""The Generation row becomes the one queue of a job's steps
(docs/decisions/0001-job-queue.md): the indexes the worker's claim reads,
and the task rows the old pipeline queued are dropped (their jobs' rows
are due by their own due_at). Images an earlier version saved without a
thumbnail are handed to the side task that makes them."""

from django.conf import settings
from django.db import migrations, models

# What the pipeline queued as tasks before this version, under both the old
# and the current module path.
OLD_TASKS = [f"playground.{app}.tasks.{name}" for app in ("core", "generations")
             for name in ("advance_generation", "adopt_claimed_job", "sweep_generations", "make_thumbnails")]


def drop_old_task_rows(apps, schema_editor):
    try:
        DBTaskResult = apps.get_model("django_tasks_database", "DBTaskResult")
    except LookupError:  # pragma: no cover - the app is always installed
        return
    DBTaskResult.objects.filter(task_path__in=OLD_TASKS, status__in=["READY", "RUNNING"]).delete()


def queue_missing_thumbnails(apps, schema_editor):
    GenerationImage = apps.get_model("generations", "GenerationImage")
    if GenerationImage.objects.filter(thumbnail="").exists():
        from playground.generations.tasks import make_missing_thumbnails

        make_missing_thumbnails.enqueue(0)


class Migration(migrations.Migration):

    dependencies = [
        ('accounts', '0004_api_token'),
        ('generations', '0009_pending_claim_index'),
        ('django_tasks_database', '0021_conditional_partial_index_ordering'),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.RemoveIndex(
            model_name='generation',
            name='gen_pending_claim',
        ),
        migrations.RemoveIndex(
            model_name='generationimage',
            name='image_thumbnail_missing',
        ),
        migrations.AddIndex(
            model_name='generation',
            index=models.Index(condition=models.Q(('status__in', ('queued', 'submitting', 'running'))), fields=['due_at'], name='gen_due_active'),
        ),
        migrations.AddIndex(
            model_name='generation',
            index=models.Index(condition=models.Q(('claimed_job_id', ''), _negated=True), fields=['due_at'], name='gen_pending_claim'),
        ),
        migrations.AddIndex(
            model_name='generationimage',
            index=models.Index(condition=models.Q(('thumbnail', '')), fields=['id'], name='image_thumbnail_missing'),
        ),
        migrations.RunPython(drop_old_task_rows, migrations.RunPython.noop),
        migrations.RunPython(queue_missing_thumbnails, migrations.RunPython.noop),
    ]
