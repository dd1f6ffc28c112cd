"""What the queue itself costs a job's step, for docs/decisions/0001-job-queue.md.

Two ways for a worker to find and hold the next due step, side by side in one
run, on the same database (SQLite by default, PostgreSQL with --database-url):

  tasks  a django-tasks-db row per step, as today: enqueue it (one insert),
         then db_worker's loop claims it (SELECT ... FOR UPDATE SKIP LOCKED
         where the database has it, then an update to RUNNING), runs it (a
         no-op here) and marks it SUCCESSFUL.
  rows   the Generation row is the queue, as the job worker claims it
         (playground.generations.pipeline.queue.claim: a peek, then one
         short transaction that selects up to --batch due rows, SKIP LOCKED
         on PostgreSQL, sets their lease and reads them back), and one
         conditional update per row sets its next due time and drops the
         lease, as a step's end does.

Prints CPU and wall milliseconds per step for each, and the ratio. Only the
queue is measured: no provider call, no image.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path
import sys
import tempfile
import time

ROOT = Path(__file__).resolve().parents[1]


def noop(n: int) -> int:
    return n


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--steps", type=int, default=2000)
    ap.add_argument("--batch", type=int, default=20, help="rows claimed by one update (rows way)")
    ap.add_argument("--database-url")
    args = ap.parse_args()
    tmp = tempfile.mkdtemp(prefix="playground-queue-claim-")
    os.environ.update(DATA_DIR=tmp, DJANGO_SETTINGS_MODULE="playground.settings", LOG_LEVEL="WARNING")
    os.environ.pop("DATABASE_URL", None)
    if args.database_url:
        os.environ["DATABASE_URL"] = args.database_url
    sys.path.insert(0, str(ROOT))
    import django

    django.setup()
    from datetime import timedelta

    from django.contrib.auth import get_user_model
    from django.core.management import call_command
    from django.db import connection
    from django.tasks import task
    from django.utils import timezone
    from django_tasks_db.management.commands.db_worker import Worker
    from django_tasks_db.models import DBTaskResult

    from playground.accounts.models import Membership, Team
    from playground.generations.models import Generation

    call_command("migrate", verbosity=0)
    n = args.steps
    step_task = task(noop)
    globals()["noop"] = step_task  # the worker finds the task by its path, __main__.noop

    def measure(fn):
        c, w = time.process_time(), time.perf_counter()
        fn()
        return (time.process_time() - c) / n * 1000, (time.perf_counter() - w) / n * 1000

    def tasks_way():
        for i in range(n):
            step_task.enqueue(i)
        Worker(queue_names=["default"], interval=0, batch=True, backend_name="default", startup_delay=False,
               max_tasks=None, worker_id="bench", excluded_queue_names=[]).run()
        assert DBTaskResult.objects.filter(status="SUCCESSFUL").count() == n

    user = get_user_model().objects.create_user(f"queue-{os.getpid()}")
    team = Team.objects.create(name="Queue bench")
    Membership.objects.create(team=team, user=user, role="owner")
    Generation.objects.bulk_create(
        Generation(team=team, owner=user, provider="kie", model="seedream-v4", params={"prompt": "x"},
                   status=Generation.RUNNING, due_at=timezone.now() - timedelta(seconds=1)) for _ in range(n))
    from playground.generations.pipeline.queue import claim

    def rows_way():
        done = 0
        while done < n:
            claimed = claim(args.batch, "bench")
            later = timezone.now() + timedelta(hours=1)
            for gen in claimed:  # each step's end: its next due time, the lease dropped
                Generation.objects.filter(pk=gen.pk, held_by="bench").update(due_at=later, lease_until=None)
            done += len(claimed)
            assert claimed

    t_cpu, t_wall = measure(tasks_way)
    r_cpu, r_wall = measure(rows_way)
    engine = "PostgreSQL" if connection.vendor == "postgresql" else "SQLite"
    print(f"queue cost per step, {n} steps, {engine}:")
    print(f"  tasks (a django-tasks-db row each): {t_cpu:.2f} ms CPU, {t_wall:.2f} ms wall")
    print(f"  rows (claimed {args.batch} at a time): {r_cpu:.2f} ms CPU, {r_wall:.2f} ms wall")
    print(f"  tasks / rows: {t_cpu / r_cpu:.1f}x CPU, {t_wall / r_wall:.1f}x wall")


if __name__ == "__main__":
    main()
