"""Background tasks, written against the Tasks API (django.tasks in Django 6,
the django-tasks backport here) so that the backend stays swappable.

Task arguments are ids only: never a key, never parameters."""

try:  # Django >= 6.0
    from django.tasks import task
except ImportError:  # the backport
    from django_tasks import task


@task()
def advance_generation(generation_id: int) -> str:
    from . import jobs

    return jobs.advance(generation_id)


@task()
def sweep_generations() -> int:
    from . import jobs

    return jobs.sweep()
