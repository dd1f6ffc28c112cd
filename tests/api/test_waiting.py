"""Waiting API requests share one status read per tick (api/waiting.py): with
many requests waiting, the web process reads their jobs once per tick, not
once per request, and each request is answered when its own jobs are done,
or at its deadline."""

import asyncio

import pytest

from playground.api import waiting
from playground.generations.models import Generation
from tests import factories

pytestmark = pytest.mark.django_db(transaction=True)


def jobs(team, user, n):
    return [Generation.objects.create(team=team, owner=user, provider="kie", model="seedream-v4",
                                      params={"prompt": f"a calm sea {i}"}, status=Generation.RUNNING)
            for i in range(n)]


@pytest.fixture
def reads(monkeypatch):
    seen = []
    real = waiting.Watcher.read

    async def counted(wanted):
        seen.append(set(wanted))
        return await real(wanted)

    monkeypatch.setattr(waiting.Watcher, "read", staticmethod(counted))
    monkeypatch.setattr(waiting, "TICK", 0.05)
    return seen


def test_many_waiting_requests_share_one_read_a_tick_and_each_ends_with_its_own_jobs(team, user, reads):
    gens = jobs(team, user, 40)

    async def scenario():
        waits = [asyncio.ensure_future(waiting.wait_for([g.pk], 5.0)) for g in gens]
        await asyncio.sleep(0.12)  # a few ticks, nothing done
        assert not any(w.done() for w in waits)
        ticks = len(reads)
        assert 1 <= ticks <= 4 and all(len(r) == 40 for r in reads)  # one read for all 40
        from asgiref.sync import sync_to_async

        await sync_to_async(Generation.objects.filter(pk__in=[g.pk for g in gens[:10]]).update)(
            status=Generation.SUCCEEDED)
        done = await asyncio.gather(*waits[:10])
        assert done == [True] * 10
        assert not any(w.done() for w in waits[10:])
        await sync_to_async(Generation.objects.update)(status=Generation.FAILED)
        assert await asyncio.gather(*waits[10:]) == [True] * 30
        await asyncio.sleep(0.15)
        return ticks

    asyncio.run(scenario())
    # Once nothing waits, nothing is read.
    after = len(reads)
    asyncio.run(asyncio.sleep(0.15))
    assert len(reads) == after


def test_a_request_whose_jobs_run_on_gets_false_at_its_deadline(team, user, reads):
    slow, quick = jobs(team, user, 2)

    async def scenario():
        late = asyncio.ensure_future(waiting.wait_for([slow.pk, quick.pk], 0.2))
        assert await late is False  # one of its two jobs still runs
        return len(reads)

    assert asyncio.run(scenario()) >= 1


def test_jobs_already_done_answer_at_the_first_read(team, user, reads):
    (gen,) = jobs(team, user, 1)
    Generation.objects.filter(pk=gen.pk).update(status=Generation.SUCCEEDED)
    assert asyncio.run(waiting.wait_for([gen.pk], 5.0)) is True
    assert len(reads) == 1


def test_a_request_that_comes_in_during_a_read_is_not_judged_by_it(team, user, monkeypatch):
    first, second = jobs(team, user, 2)
    Generation.objects.filter(pk=first.pk).update(status=Generation.SUCCEEDED)
    gate = {}
    real = waiting.Watcher.read

    async def slow(wanted):
        if "event" in gate:
            await gate["event"].wait()  # the first read is still on its way...
        return await real(wanted)

    monkeypatch.setattr(waiting.Watcher, "read", staticmethod(slow))
    monkeypatch.setattr(waiting, "TICK", 0.05)

    async def scenario():
        gate["event"] = asyncio.Event()
        a = asyncio.ensure_future(waiting.wait_for([first.pk], 5.0))
        await asyncio.sleep(0.02)
        b = asyncio.ensure_future(waiting.wait_for([second.pk], 0.5))  # ...when this one comes in
        await asyncio.sleep(0.02)
        gate.pop("event").set()
        assert await a is True
        assert await b is False  # its job still runs: the read that began before it did not clear it

    asyncio.run(scenario())
