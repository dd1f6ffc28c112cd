"""A task worker loads what its jobs use before it takes its first one.

Measured (bench/throughput.py, issue 10's worker_rss_growth): a worker's
RSS grew by ~9 MiB (1.13-1.14x) with its first job and then stayed flat
(the same after 3, 100 and 300 jobs). That was not a leak but lazy loading
on the first job: the job pipeline's modules (~4 MiB), Pillow's format
plugins (~3.5 MiB), the adapters and their HTTP clients' SSL contexts.
Loading them at start, as Celery imports its task modules when a worker
starts, makes the first job as cheap as the rest (no import pause inside a
job's lease) and leaves the worker's RSS a measure of real growth.

Pillow allocates pixels in 64 KiB blocks (settings: PILLOW_BLOCK_SIZE), so
the C allocator does not keep each freed 4 MiB image. What a worker's
allocator keeps after a burst of images is not trimmed by hand: `manage.py
serve` runs each job worker with `--max-steps` (TASK_WORKER_MAX_TASKS) and
starts it again when it exits, so a worker that grows is replaced by a fresh
one after that many steps.
"""

from __future__ import annotations

import sys

# Management commands that run workers: the job worker, and django-tasks-db's
# for the side tasks.
WORKER_COMMANDS = ("run_jobs", "db_worker")


def is_task_worker(argv: list[str] | None = None) -> bool:
    argv = sys.argv if argv is None else argv
    return len(argv) > 1 and argv[1] in WORKER_COMMANDS


def warm_up() -> None:
    from PIL import Image

    from playground.lib.net import guard
    from playground.providers import registry
    from playground.providers.client import process_client

    from . import tasks  # noqa: F401
    from .pipeline import worker  # noqa: F401  (and every step it runs)

    Image.init()  # every format plugin, as the first decode of an unusual file would
    guard.ssl_context()  # the download clients' one SSL context
    for cls in registry.adapter_classes().values():
        process_client(cls)  # each adapter's one client in this process
