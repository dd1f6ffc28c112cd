"""The short lease a worker holds on the jobs it works on, renewed for all
of them by one heartbeat thread while their steps run."""

from __future__ import annotations

import logging
import threading

from django.conf import settings

from .queue import renew

log = logging.getLogger("playground.jobs")


class Heartbeat:
    """Every JOB_HEARTBEAT_SECONDS, one update extends the leases of the
    jobs held() names (a synchronous provider call may take minutes). A
    worker that dies stops renewing them: once they run out, the jobs are
    due again and another worker claims them."""

    def __init__(self, holder: str, held):
        self.holder, self.held = holder, held
        self.stop = threading.Event()
        self.thread = None

    def __enter__(self):
        every = settings.JOB_HEARTBEAT_SECONDS
        if every and every > 0:
            self.thread = threading.Thread(target=self.run, args=(every,), daemon=True, name="lease-heartbeat")
            self.thread.start()
        return self

    def __exit__(self, *exc):
        self.stop.set()
        if self.thread is not None:
            self.thread.join(timeout=5)

    def run(self, every: float):
        from django.db import connection

        try:
            while not self.stop.wait(every):
                try:
                    renew(self.held(), self.holder)
                except Exception:  # e.g. a locked database: try again next beat
                    log.warning("lease heartbeat failed", exc_info=True)
        finally:
            connection.close()  # this thread's own connection
