"""Django's SQLite backend, with writers that wait their turn in short steps.

SQLite has one writer at a time. A connection that finds the write lock
taken waits in SQLite's busy handler, which sleeps 1, 2, 5, 10, 15, 20, 25 ...
up to 100 ms between tries. A process that writes in a tight loop (a burst of
new jobs, each one short transaction) frees the lock for a few milliseconds
between its transactions and takes it again at once, while the others are
still asleep: they get a turn only when the loop ends. Measured with 1,000
jobs created in a loop, the task workers' submits then waited 6 s (median)
on SQLite and 0.2 s on PostgreSQL.

Here SQLite's own wait is off and a statement that finds the lock taken is
tried again after 0.25 to 4 ms (growing, with jitter), until the database's
timeout: waiters look often enough to take the lock in those gaps. A retry
is made only when it is safe: the failed statement left no transaction open
(it ran alone, or it was the BEGIN of one). Inside a transaction the lock is
already held (transactions begin IMMEDIATE), so nothing there waits.

It also keeps the planner's statistics current (planner.py: PRAGMA
optimize as a connection opens and closes, ANALYZE after migrate), and its
schema editor keeps triggers through Django's table remakes (schema.py).
"""

from __future__ import annotations

import random
import sqlite3
import time

from django.db.backends.sqlite3 import base
from django.db.models.signals import post_migrate

from . import planner, schema

FIRST_SLEEP = 0.00025
MAX_SLEEP = 0.004


def _locked(error: Exception) -> bool:
    return isinstance(error, sqlite3.OperationalError) and (
        getattr(error, "sqlite_errorcode", None) in (sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED)
        or "database is locked" in str(error))


class TakingTurnsCursor(base.SQLiteCursorWrapper):
    timeout = 20.0

    def _retrying(self, run, *args):
        deadline = None
        sleep = FIRST_SLEEP
        while True:
            try:
                return run(*args)
            except sqlite3.OperationalError as e:
                if not _locked(e) or self.connection.in_transaction:
                    raise
                now = time.monotonic()
                if deadline is None:
                    deadline = now + self.timeout
                if now >= deadline:
                    raise
                time.sleep(sleep * random.uniform(0.5, 1.5))
                sleep = min(MAX_SLEEP, sleep * 2)

    def execute(self, query, params=None):
        return self._retrying(super().execute, query, params)

    def executemany(self, query, param_list):
        param_list = list(param_list)  # a generator could not be read twice
        return self._retrying(super().executemany, query, param_list)


class DatabaseWrapper(base.DatabaseWrapper):
    SchemaEditorClass = schema.DatabaseSchemaEditor  # keeps triggers through table remakes

    def get_new_connection(self, conn_params):
        # Connecting (its PRAGMAs: switching to WAL takes the lock once)
        # waits as SQLite does; then SQLite's own waiting is turned off.
        conn = super().get_new_connection(conn_params)
        conn.execute("PRAGMA busy_timeout = 0")
        planner.on_open(conn)
        return conn

    def close(self):
        # Statistics of the tables this connection used, when stale (a
        # no-op most of the time). Not in a transaction: closing rolls it back.
        self.validate_thread_sharing()
        conn = self.connection
        if conn is not None and not self.in_atomic_block and not conn.in_transaction and not self.is_in_memory_db():
            planner.on_close(conn)
        super().close()

    def create_cursor(self, name=None):
        cursor = self.connection.cursor(factory=TakingTurnsCursor)
        cursor.timeout = float(self.settings_dict["OPTIONS"].get("timeout", 5.0))
        return cursor


post_migrate.connect(planner.after_migrate, dispatch_uid="playground.lib.sqlite.planner.after_migrate")
