"""Each key's documented limit holds across workers (RELIABILITY 9)."""

from concurrent.futures import ThreadPoolExecutor

from django.db import connection
import pytest

from playground.generations import ratelimit
from playground.generations.models import RateSlot


def test_it_grants_up_to_the_limit_then_says_how_long_to_wait(db):
    limits = [(3, 60.0)]
    assert [ratelimit.acquire("b1", limits) for _ in range(3)] == [None, None, None]
    wait = ratelimit.acquire("b1", limits)
    assert 59 < wait <= 60
    assert ratelimit.acquire("b2", limits) is None  # another key has its own budget


def test_every_window_is_held(db):
    from datetime import timedelta

    limits = [(2, 1.0), (3, 3600.0)]  # like Kwiki's 10/minute and 100/hour
    assert [ratelimit.acquire("b", limits) for _ in range(2)] == [None, None]
    assert 0 < ratelimit.acquire("b", limits) <= 1.0  # the short window is full
    for slot in RateSlot.objects.all():
        RateSlot.objects.filter(pk=slot.pk).update(at=slot.at - timedelta(seconds=5))
    assert ratelimit.acquire("b", limits) is None  # the short window has passed
    assert ratelimit.acquire("b", limits) > 3500  # but the hour is used up


def test_bucket_ids_never_contain_the_key():
    bucket = ratelimit.bucket_id("kwiki", "https://kwikiai.com", "very-secret-key")
    assert "secret" not in bucket and len(bucket) == 32
    assert bucket != ratelimit.bucket_id("kwiki", "https://kwikiai.com", "another-key")


@pytest.mark.django_db(transaction=True)
def test_concurrent_workers_cannot_take_more_slots_than_the_limit():
    limits = [(10, 60.0)]

    def take(_):
        try:
            return ratelimit.acquire("shared", limits)
        finally:
            connection.close()

    with ThreadPoolExecutor(max_workers=8) as pool:
        results = list(pool.map(take, range(40)))
    assert sum(r is None for r in results) == 10
    assert RateSlot.objects.filter(bucket="shared").count() == 10
