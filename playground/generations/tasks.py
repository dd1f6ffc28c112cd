"""Side work on the Tasks framework (django.tasks, django-tasks-db's
database backend; `manage.py db_worker`). A job's steps are not tasks: the
Generation row is their queue (pipeline.queue, docs/decisions/0001-job-queue.md).

Task arguments are ids only: never a key, never parameters."""

from django.tasks import task


@task()
def make_missing_thumbnails(after_id: int = 0) -> str:
    """The thumbnails of images an earlier version saved without one, a
    chunk at a time, each chunk a task of its own (the upgrade's migration
    queues the first)."""
    from . import thumbnails

    following = thumbnails.backfill(after_id)
    if following is not None:
        make_missing_thumbnails.enqueue(following)
    return f"images after {after_id}: done" + ("" if following is None else f"; next from {following}")
