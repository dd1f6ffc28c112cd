"""The job worker: `manage.py run_jobs` (serve starts TASK_WORKERS of them)."""

import signal

from django.conf import settings
from django.core.management.base import BaseCommand

from playground.generations.pipeline.worker import Worker, drain


class Command(BaseCommand):
    help = ("Claim due generations and run their steps, JOB_THREADS at a time; "
            "--once runs what is due now and exits.")

    def add_arguments(self, parser):
        parser.add_argument("--threads", type=int, default=None, help="steps in flight (default: JOB_THREADS)")
        parser.add_argument("--interval", type=float, default=None,
                            help="seconds between looks when nothing is due (default: TASK_WORKER_INTERVAL)")
        parser.add_argument("--max-steps", type=int, default=None,
                            help="exit after this many steps (default: TASK_WORKER_MAX_TASKS; 0: never)")
        parser.add_argument("--worker-id", default=None, help="names this worker in its leases")
        parser.add_argument("--once", action="store_true")

    def handle(self, threads, interval, max_steps, worker_id, once, **options):
        if once:
            self.stdout.write(f"ran {drain()} step(s)")
            return
        worker = Worker(
            threads=threads or settings.JOB_THREADS,
            interval=settings.TASK_WORKER_INTERVAL if interval is None else interval,
            max_steps=settings.TASK_WORKER_MAX_TASKS if max_steps is None else max_steps,
            worker_id=worker_id,
        )
        signal.signal(signal.SIGTERM, worker.stop)
        signal.signal(signal.SIGINT, worker.stop)
        steps = worker.run()
        self.stdout.write(f"worker {worker.holder}: ran {steps} step(s)")
