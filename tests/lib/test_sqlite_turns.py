"""The SQLite backend's writers take turns (playground/lib/sqlite): SQLite's
own busy handler (sleeps of up to 100 ms between tries) is off, and a write
that finds the lock taken is tried again in short steps until the timeout.
(Measured in bench/throughput.py: the workers' submits waited 6 s, median,
while 1,000 jobs were created in a loop; 0.7 s with the backend.)"""

import sqlite3

from django.db.utils import ConnectionHandler, OperationalError
import pytest


@pytest.fixture(autouse=True)
def own_files(django_db_blocker):
    """These tests open their own SQLite files, not the test database."""
    with django_db_blocker.unblock():
        yield


def wrapper(path, engine="playground.lib.sqlite", timeout=20):
    handler = ConnectionHandler({"default": {
        "ENGINE": engine, "NAME": str(path),
        "OPTIONS": {"transaction_mode": "IMMEDIATE", "timeout": timeout,
                    "init_command": "PRAGMA journal_mode=WAL;PRAGMA synchronous=NORMAL;"},
    }})
    return handler["default"]


def _hog(path, engine, transactions, committed, started, ready):
    w = wrapper(path, engine)
    with w.cursor() as c:
        ready.wait(10)
        for i in range(transactions):
            c.execute("BEGIN IMMEDIATE")
            c.executemany("INSERT INTO t VALUES ('hog', ?, ?)", [(i, b"x" * 2000)] * 100)
            c.execute("COMMIT")
            with committed.get_lock():
                committed.value += 1
            started.set()
            sum(range(30_000))  # a little work between transactions, as a web request's before its write
    w.close()


def _writer(path, engine, writes, committed, started, ready, out):
    w = wrapper(path, engine)
    seen = []
    with w.cursor() as c:
        c.execute("SELECT count(*) FROM t")  # connected before the loop starts
        ready.set()
        started.wait(10)
        for i in range(writes):
            c.execute("INSERT INTO t VALUES ('writer', ?, NULL)", [i])
            seen.append(committed.value)
    w.close()
    out.put(seen)


def hog_and_writer(path, engine, hog_transactions=300, writes=10):
    """A hog process writes in back-to-back transactions; another process
    makes `writes` single inserts meanwhile. Returns, for each insert, how
    many of the hog's transactions had committed when it went through."""
    import multiprocessing

    setup = wrapper(path, engine)
    with setup.cursor() as c:
        c.execute("CREATE TABLE t (who TEXT, n INTEGER, payload BLOB)")
    setup.close()
    ctx = multiprocessing.get_context("fork")
    committed, started, ready, out = ctx.Value("i", 0), ctx.Event(), ctx.Event(), ctx.Queue()
    procs = [ctx.Process(target=_hog, args=(path, engine, hog_transactions, committed, started, ready)),
             ctx.Process(target=_writer, args=(path, engine, writes, committed, started, ready, out))]
    for p in procs:
        p.start()
    seen = out.get(timeout=120)
    for p in procs:
        p.join(120)
        assert p.exitcode == 0
    return seen


def test_writers_wait_their_turn_instead_of_failing(tmp_path):
    """SQLite's own wait is off (busy_timeout 0): without the backend's turns,
    the writer's first insert during the loop fails with "database is locked"."""
    path = tmp_path / "db.sqlite3"
    seen = hog_and_writer(path, "playground.lib.sqlite", hog_transactions=100)
    assert len(seen) == 10
    assert min(seen) < 100  # written while the loop ran, not after it
    w = wrapper(path)
    try:
        with w.cursor() as c:
            assert c.execute("SELECT who, count(*) FROM t GROUP BY who ORDER BY who").fetchall() == [
                ("hog", 100 * 100), ("writer", 10)]
            assert c.execute("PRAGMA busy_timeout").fetchone()[0] == 0
    finally:
        w.close()


def test_a_lock_held_past_the_timeout_is_still_an_error(tmp_path):
    path = tmp_path / "db.sqlite3"
    holder = sqlite3.connect(path, isolation_level=None)
    holder.execute("PRAGMA journal_mode=WAL")
    holder.execute("CREATE TABLE t (n INTEGER)")
    holder.execute("BEGIN IMMEDIATE")
    w = wrapper(path, timeout=0.3)
    try:
        with pytest.raises(OperationalError, match="locked"):
            with w.cursor() as c:
                c.execute("INSERT INTO t VALUES (1)")
        holder.execute("COMMIT")
        with w.cursor() as c:  # free again: it goes through
            c.execute("INSERT INTO t VALUES (2)")
            assert c.execute("SELECT count(*) FROM t").fetchone()[0] == 1
    finally:
        w.close()
        holder.close()
