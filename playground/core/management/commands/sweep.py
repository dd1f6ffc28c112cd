import time

from django.core.management.base import BaseCommand
from django.db import close_old_connections

from playground.core import jobs


class Command(BaseCommand):
    help = "Re-enqueue generations whose worker vanished (run once, or --loop)."

    def add_arguments(self, parser):
        parser.add_argument("--loop", action="store_true")
        parser.add_argument("--every", type=float, default=15.0)

    def handle(self, loop, every, **options):
        while True:
            close_old_connections()
            n = jobs.sweep()
            if not loop:
                self.stdout.write(f"re-enqueued {n} generation(s)")
                return
            time.sleep(every)
