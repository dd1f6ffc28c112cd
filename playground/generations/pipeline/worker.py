"""The job worker (`manage.py run_jobs`): claims due jobs (queue.claim) up
to its free threads, runs their steps on a thread pool, so that one worker
has JOB_THREADS provider calls in flight, and renews all its leases with one
heartbeat. drain() runs the same claim and step in the calling thread."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor, wait
import logging
import os
import socket
import threading
import uuid

from django.conf import settings
from django.db import close_old_connections, connection

from .calls import per_batch, usable_endpoint
from .lease import Heartbeat
from .queue import claim
from .steps import step

log = logging.getLogger("playground.jobs")


def holder_name(worker_id: str | None = None) -> str:
    """Names this worker process in the leases it holds (max 64 chars)."""
    worker_id = worker_id or f"{socket.gethostname()}-{os.getpid()}"
    return f"{worker_id[:48]}-{uuid.uuid4().hex[:12]}"


def run_claimed(gen, endpoints: dict) -> str:
    """One claimed job's step, sharing the endpoints resolved for the other
    jobs of its claim (calls.usable_endpoint)."""
    per_batch.endpoints = endpoints
    try:
        return step(gen)
    finally:
        per_batch.endpoints = None


def resolved_once(rows) -> dict:
    """The endpoints of a claim's jobs, resolved here, once per team and
    provider, before their steps start on the pool's threads together (each
    would otherwise miss the shared cache at the same moment)."""
    endpoints = {}
    per_batch.endpoints = endpoints
    try:
        for gen in rows:
            usable_endpoint(gen)
    except Exception:  # e.g. the database restarting: each step resolves its own
        log.exception("resolving the endpoints of a claim failed")
        endpoints.clear()
    finally:
        per_batch.endpoints = None
    return endpoints


def drain(limit: int = 50, holder: str | None = None) -> int:
    """Claim the due jobs and run their steps here, one after another, until
    none is due. Returns the number of steps run (tests, `run_jobs --once`)."""
    holder = holder or holder_name()
    count = 0
    while rows := claim(limit, holder):
        endpoints = {}
        for gen in rows:
            run_claimed(gen, endpoints)
            count += 1
    return count


class Worker:
    """Runs until stop() (SIGTERM, SIGINT) or max_steps steps, then lets the
    steps in flight end before it returns."""

    def __init__(self, *, threads: int, interval: float, max_steps: int = 0, worker_id: str | None = None):
        self.threads, self.interval, self.max_steps = max(1, threads), interval, max_steps
        self.holder = holder_name(worker_id)
        self.running: dict[int, object] = {}
        self.lock = threading.Lock()
        self.wake = threading.Event()
        self.stopping = False
        self.steps = 0

    def stop(self, *args):
        self.stopping = True
        self.wake.set()

    def held(self) -> list[int]:
        with self.lock:
            return list(self.running)

    def run(self) -> int:
        # The heartbeat outlives the pool: the steps in flight at a stop keep
        # their leases until they end.
        with Heartbeat(self.holder, self.held), ThreadPoolExecutor(self.threads, thread_name_prefix="job") as pool:
            self.start_threads(pool)
            while not self.stopping and not (self.max_steps and self.steps >= self.max_steps):
                self.wake.clear()
                free = self.threads - len(self.running)
                if self.max_steps:
                    free = min(free, self.max_steps - self.steps - len(self.running))
                rows = []
                if free > 0:
                    close_old_connections()
                    try:
                        rows = claim(free, self.holder)
                    except Exception:  # e.g. the database restarting: look again shortly
                        log.exception("claiming due jobs failed")
                    endpoints = resolved_once(rows)
                    for gen in rows:
                        with self.lock:
                            if gen.pk in self.running:  # its lease ran out while our own step still runs
                                continue
                            self.running[gen.pk] = pool.submit(self.one, gen, endpoints)
                if free > 0 and len(rows) == free:
                    continue  # more may be due: claim again at once
                self.wake.wait(self.interval)
            log.info("worker %s stopping: waiting for %d step(s) in flight", self.holder, len(self.running))
            with self.lock:
                in_flight = list(self.running.values())
            wait(in_flight)
            self.on_every_thread(pool, connection.close)  # each thread's own connection
        return self.steps

    def start_threads(self, pool):
        """Every thread of the pool, each with its database connection, at
        start (as warmup loads the code): the first burst of jobs costs no
        more than the next, and the worker's RSS measures real growth."""
        self.on_every_thread(pool, connection.ensure_connection)

    def on_every_thread(self, pool, fn):
        """fn once on each of the pool's threads (each waits for the others,
        so no thread runs it twice)."""
        together = threading.Barrier(self.threads + 1)

        def run():
            try:
                fn()
            finally:
                together.wait(timeout=30)

        for _ in range(self.threads):
            pool.submit(run)
        together.wait(timeout=30)

    def one(self, gen, endpoints):
        close_old_connections()
        try:
            run_claimed(gen, endpoints)
        except Exception:  # step() catches its own; this is a last guard: the lease runs out
            log.exception("generation %s: step failed", gen.pk)
        finally:
            with self.lock:
                was_full = len(self.running) >= self.threads
                self.running.pop(gen.pk, None)
                self.steps += 1
            if was_full or self.stopping:  # a free thread: claim at once (else the next look is due anyway)
                self.wake.set()
