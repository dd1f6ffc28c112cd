"""A task worker loads what its jobs use before it takes its first one.

Measured (bench/throughput.py, issue 10's worker_rss_growth): a worker's
RSS grew by ~9 MiB (1.13-1.14x) with its first job and then stayed flat
(the same after 3, 100 and 300 jobs). That was not a leak but lazy loading
on the first job: the job pipeline's modules (~4 MiB), Pillow's format
plugins (~3.5 MiB), the adapters and their HTTP clients' SSL contexts.
Loading them at start, as Celery imports its task modules when a worker
starts, makes the first job as cheap as the rest (no import pause inside a
job's lease) and leaves the worker's RSS a measure of real growth.
"""

from __future__ import annotations

import contextlib
import logging
import sys
import threading
import time

# Management commands that run task workers (django-tasks-db, django-tasks-rq).
WORKER_COMMANDS = ("db_worker", "rqworker")


def is_task_worker(argv: list[str] | None = None) -> bool:
    argv = sys.argv if argv is None else argv
    return len(argv) > 1 and argv[1] in WORKER_COMMANDS


def warm_up() -> None:
    from PIL import Image

    from playground.lib import egress
    from playground.providers import registry
    from playground.providers.base import process_client

    from . import jobs, tasks  # noqa: F401  (what every task runs)

    Image.init()  # every format plugin, as the first decode of an unusual file would
    egress.ssl_context()  # the download clients' one SSL context
    for cls in registry.adapter_classes().values():
        process_client(cls)  # each adapter's one client in this process
    keep_freed_memory_in_bursts()
    release_free_memory()


_libc = None

# mallopt parameters (glibc's malloc.h)
M_TRIM_THRESHOLD = -1
M_MMAP_THRESHOLD = -3


def _glibc():
    global _libc
    import ctypes
    import ctypes.util

    if _libc is None:
        try:
            _libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
            _libc.malloc_trim, _libc.mallopt  # noqa: B018  (glibc's, or not glibc)
        except (OSError, AttributeError):
            _libc = False
    return _libc


def keep_freed_memory_in_bursts() -> bool:
    """glibc only: keep freed image buffers (up to 32 MiB each) in the heap
    for the next job instead of giving them back at once, so a burst of jobs
    reuses its pages; IdleTrim gives them back when the burst ends.

    By default glibc maps big buffers on their own and unmaps them when freed,
    or trims the heap's top as soon as 128 KiB-32 MiB of it is free (its
    thresholds move as it goes). Either way the next image's buffers were
    fresh pages, each a page fault: in a worker, tobytes and the PNG encoder
    of a 1024 px image took 3-4x as long as in a loop of checks."""
    libc = _glibc()
    if not libc:
        return False
    return bool(libc.mallopt(M_MMAP_THRESHOLD, 32 << 20)) and bool(libc.mallopt(M_TRIM_THRESHOLD, 256 << 20))


def release_free_memory() -> bool:
    """glibc only: give the pages of freed memory back to the system
    (malloc_trim), called once a task is done. Images' pixel buffers come
    from the heap and are reused from job to job within a task (a batch of
    up to JOB_BATCH_SIZE steps); glibc would keep the heap's freed pages
    after the task, so a worker's RSS grew with its first images by several
    MiB, differently in each worker. Trimming after each task returns them.

    (Keeping every big buffer in its own mapping instead, a fixed mmap
    threshold, held RSS as well but cost ~15 ms of page faults per 1024 px
    image: 35 instead of 21 ms to check one.)"""
    libc = _glibc()
    if not libc:  # not glibc: its own allocator's policy stands
        return False
    return bool(libc.malloc_trim(0))


class IdleTrim:
    """Gives freed memory back (release_free_memory) once the worker has been
    idle for `idle` seconds, not after every task.

    Trimming after each task kept RSS flat but cost the next task its page
    faults: glibc hands out the trimmed pages again one fault at a time, ~6 ms
    per 1024 px image here (29 instead of 21-22 ms to check one). During a
    burst the buffers are reused from task to task with no faults; the pages
    go back to the system when the burst ends."""

    def __init__(self, idle: float = 1.0, clock=time.monotonic):
        self.idle = idle
        self.clock = clock
        self.busy = 0
        self.last_end: float | None = None  # None: nothing to trim since the last trim
        self.trims = 0
        self._cv = threading.Condition()
        self._thread: threading.Thread | None = None

    def due(self, now: float) -> bool:
        return self.busy == 0 and self.last_end is not None and now - self.last_end >= self.idle

    def task_started(self) -> None:
        with self._cv:
            self.busy += 1

    def task_ended(self) -> None:
        with self._cv:
            self.busy = max(0, self.busy - 1)
            self.last_end = self.clock()
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="idle-trim", daemon=True)
                self._thread.start()
            self._cv.notify_all()

    @contextlib.contextmanager
    def task(self):
        """Around one task's run."""
        self.task_started()
        try:
            yield
        finally:
            self.task_ended()

    def _run(self) -> None:
        while True:
            with self._cv:
                while not self.due(self.clock()):
                    if self.busy or self.last_end is None:
                        self._cv.wait()
                    else:
                        self._cv.wait(max(0.0, self.idle - (self.clock() - self.last_end)))
                self.last_end = None
            try:
                release_free_memory()  # glibc locks its arenas: safe beside a task that allocates
            except Exception:  # one failure must not end trimming for the worker's life
                log.exception("Giving freed memory back failed")
            with self._cv:
                self.trims += 1
                self._cv.notify_all()

    def wait_for_trim(self, trims: int, timeout: float) -> bool:
        """Until `trims` trims have been done (for tests)."""
        with self._cv:
            return self._cv.wait_for(lambda: self.trims >= trims, timeout)


log = logging.getLogger("playground.jobs")
idle_trim = IdleTrim()
