import time

from django.conf import settings
from django.core.management.base import BaseCommand
from django.db import close_old_connections

from playground.generations.pipeline import sweep


class Command(BaseCommand):
    help = ("Re-enqueue generations whose worker vanished and mark its task rows failed "
            "(run once, or --loop).")

    def add_arguments(self, parser):
        parser.add_argument("--loop", action="store_true")
        parser.add_argument("--every", type=float, default=None,
                            help="seconds between sweeps (default: JOB_SWEEP_EVERY_SECONDS)")

    def handle(self, loop, every, **options):
        every = every if every is not None else settings.JOB_SWEEP_EVERY_SECONDS
        while True:
            close_old_connections()
            n = sweep.sweep()
            if not loop:
                self.stdout.write(f"re-enqueued {n} generation(s)")
                return
            time.sleep(every)
