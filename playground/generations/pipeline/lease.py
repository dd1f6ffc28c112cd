"""The short lease a worker holds on its job, renewed by a heartbeat
thread while a step runs."""

from __future__ import annotations

from datetime import timedelta
import logging
import threading

from django.conf import settings
from django.utils import timezone

from ..models import Generation

log = logging.getLogger("playground.jobs")


def renew_lease(generation_id: int, holder: str) -> bool:
    """Extend the lease, only while this holder still has it."""
    now = timezone.now()
    return Generation.objects.filter(
        pk=generation_id, held_by=holder, lease_until__isnull=False, status__in=Generation.ACTIVE,
    ).update(lease_until=now + timedelta(seconds=settings.JOB_LEASE_SECONDS)) == 1


class Heartbeat:
    """While a step runs (a synchronous provider call may take minutes), a
    background thread renews the job's short lease every
    JOB_HEARTBEAT_SECONDS. A worker that dies stops renewing it, and the sweep
    resumes the job once the lease has run out. more: other (job id, holder)
    leases of the same run (a batch), renewed with it until each is released."""

    def __init__(self, generation_id: int, holder: str, more=()):
        self.held = [(generation_id, holder), *more]
        self.generation_id = generation_id
        self.stop = threading.Event()
        self.thread = None

    def __enter__(self):
        every = settings.JOB_HEARTBEAT_SECONDS
        if every and every > 0:
            self.thread = threading.Thread(target=self.run, args=(every,), daemon=True,
                                           name=f"lease-heartbeat-{self.generation_id}")
            self.thread.start()
        return self

    def __exit__(self, *exc):
        self.stop.set()
        if self.thread is not None:
            self.thread.join(timeout=5)

    def release(self, pair):
        """Stop renewing one of the leases."""
        try:
            self.held.remove(pair)
        except ValueError:
            pass

    def run(self, every: float):
        from django.db import connection

        try:
            while self.held and not self.stop.wait(every):
                for pair in list(self.held):
                    try:
                        if not renew_lease(*pair):
                            self.release(pair)  # released, finished, or taken over: nothing left to hold
                    except Exception:  # e.g. a locked database: try again next beat
                        log.warning("generation %s: lease heartbeat failed", pair[0], exc_info=True)
        finally:
            connection.close()  # this thread's own connection
