"""The API requests of one process that wait for their jobs, answered by one
status read per tick for all of them.

Each waiting request used to read its own jobs' status every 0.25-1 s:
with 200 requests waiting, ~400 queries a second, each a trip through the
thread pool, and the web process's other pages slowed down 5.4x
(bench/api_wait.py). Here one watcher per event loop reads, every TICK
seconds, which of all the waiting requests' jobs are still active (one
indexed query), and wakes the requests whose jobs are all done.
"""

from __future__ import annotations

import asyncio
import contextvars
import weakref

from asgiref.sync import sync_to_async
from django.db import close_old_connections

from playground.generations.models import Generation

TICK = 0.25  # seconds between two reads, while anything waits

_watchers: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


class Watcher:
    def __init__(self):
        self.waiting: dict[asyncio.Future, frozenset[int]] = {}
        self.task: asyncio.Task | None = None

    def add(self, ids: frozenset[int]) -> asyncio.Future:
        done = asyncio.get_running_loop().create_future()
        self.waiting[done] = ids
        if self.task is None or self.task.done():
            # In a context of its own: not in the request's that started it
            # (its ThreadSensitiveContext ends with that request).
            self.task = asyncio.get_running_loop().create_task(self.run(), context=contextvars.Context())
        return done

    def remove(self, done: asyncio.Future):
        self.waiting.pop(done, None)

    async def run(self):
        while self.waiting:
            # Judged by this read: the requests waiting when it began (one
            # that comes in meanwhile asked about jobs the read did not see).
            asked = dict(self.waiting)
            try:
                active = await self.read(set().union(*asked.values()))
            except Exception as e:  # the database is away: every waiter gets the error, none hangs
                for done in asked:
                    if not done.done():
                        done.set_exception(e)
                    self.waiting.pop(done, None)
                continue
            for done, ids in asked.items():
                if not (ids & active) and not done.done():
                    done.set_result(True)
                    self.waiting.pop(done, None)
            if self.waiting:
                await asyncio.sleep(TICK)

    @staticmethod
    async def read(wanted: set[int]) -> set[int]:
        """Which of these jobs are still active: the tick's one query."""
        return await sync_to_async(_active)(wanted)


def _active(wanted: set[int]) -> set[int]:
    # This runs on asgiref's shared thread, outside any request: its
    # connection is checked here as a request's would be at its start.
    close_old_connections()
    return set(Generation.objects.filter(pk__in=wanted, status__in=Generation.ACTIVE).values_list("pk", flat=True))


async def wait_for(ids: list[int], deadline_in: float) -> bool:
    """True once none of these generations is active; False after
    deadline_in seconds. Holds no thread while it waits."""
    loop = asyncio.get_running_loop()
    watcher = _watchers.get(loop)
    if watcher is None:
        watcher = _watchers[loop] = Watcher()
    done = watcher.add(frozenset(ids))
    try:
        await asyncio.wait_for(asyncio.shield(done), timeout=max(0.0, deadline_in))
        return True
    except TimeoutError:
        return False
    finally:
        watcher.remove(done)
