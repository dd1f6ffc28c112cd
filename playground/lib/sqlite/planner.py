"""Planner statistics that stay current (issue 26).

SQLite plans a query from the statistics ANALYZE leaves in sqlite_stat1.
Without them it guesses that an equality on any index picks 10 rows, so at
100,000 generations in one team it could read the whole team through the
team index where the unique uuid index reads one row per id. As SQLite
advises (https://sqlite.org/pragma.html#pragma_optimize):

- on opening a connection, `PRAGMA optimize=0x10002`: from SQLite 3.46,
  check every table and analyze those that changed a lot since their last
  analysis (older versions read it as a plain optimize, which does nothing
  on a connection that has not run a query yet);
- on closing one, `PRAGMA optimize`: analyze the tables this connection
  used whose statistics are missing or stale (a no-op nearly always). The
  app's connections close at the end of a request or after CONN_MAX_AGE
  (60 s): that is the "periodically" of long-lived ones;
- after `migrate` has changed the schema (new tables and indexes have no
  statistics yet), one ANALYZE (`after_migrate`, connected by the backend).

Two adjustments, both measured on the generations table at 100,000 rows:

- An index with no entries gets no statistics from ANALYZE, and optimize
  re-analyzes every table that has such an index, at every close: the
  partial indexes of the job queue (gen_pending_claim, and gen_due_active
  with no job running) are empty most of the time, so each close of a
  connection that read the generations would ANALYZE them again (~0.1 s,
  holding the write lock). So optimize is asked what it would do (its 0x01
  bit), does that, and then gives each such empty index a row of its own
  ("1 1": one entry), as ANALYZE would for an index of one entry.
- No analysis limit (the 0x10 bit, which a bare optimize sets from 3.46,
  or PRAGMA analysis_limit): an ANALYZE limited to N rows of an index
  records at most about N rows per key, so a team of 100,000 generations
  looks like one of 1,000 and the team index like a good way to find 400
  rows by id. A full ANALYZE of the generations at 100,000 takes ~0.1 s
  (everything ~0.6 s), and optimize asks for one only when a table has
  grown many times over since its last.

Statistics are advice to the planner, never needed for a correct answer: an
error here (the database busy with another writer: this backend does not
wait, see base.py) is let go and a later close tries again."""

from __future__ import annotations

import sqlite3

from django.apps import apps

ON_OPEN = 0x10002
ON_CLOSE = 0x02
DEBUG = 0x01  # optimize only says what it would do

# A row for each index of an analyzed table that ANALYZE left without one
# (it had no entries): "1" and a 1 for each of its columns.
EMPTY_INDEXES = """
    INSERT INTO sqlite_stat1 (tbl, idx, stat)
    SELECT i.tbl_name, i.name,
           '1' || substr(' 1 1 1 1 1 1 1 1 1 1 1 1 1 1 1 1', 1, 2 * (SELECT count(*) FROM pragma_index_info(i.name)))
    FROM sqlite_schema AS i
    WHERE i.type = 'index' AND i.tbl_name IN (SELECT tbl FROM sqlite_stat1)
      AND NOT EXISTS (SELECT 1 FROM sqlite_stat1 AS s WHERE s.tbl = i.tbl_name AND s.idx = i.name)
"""


def optimize(conn, mask: int) -> list[str]:
    """PRAGMA optimize with this mask, then rows for the empty indexes of
    what it analyzed. Returns the ANALYZE statements it ran."""
    statements = [row[0] for row in conn.execute(f"PRAGMA optimize = {mask | DEBUG}")]
    for sql in statements:
        conn.execute(sql)
    if statements:
        conn.execute(EMPTY_INDEXES)
        if conn.in_transaction:  # the INSERT began one (Python's sqlite3 outside autocommit)
            conn.commit()
    return statements


def on_open(conn) -> None:
    _quietly(conn, ON_OPEN)


def on_close(conn) -> None:
    _quietly(conn, ON_CLOSE)


def analyze(connection) -> None:
    """ANALYZE every table and index (and rows for the empty indexes), as after migrate."""
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE")
        cursor.execute("SELECT 1 FROM sqlite_schema WHERE name = 'sqlite_stat1'")
        if cursor.fetchone():
            cursor.execute(EMPTY_INDEXES)
            cursor.execute("ANALYZE sqlite_schema")  # this connection plans with them from now on


def _quietly(conn, mask: int) -> None:
    try:
        optimize(conn, mask)
    except sqlite3.Error:
        if conn.in_transaction:
            conn.rollback()


def _last_app():
    configs = [c for c in apps.get_app_configs() if c.models_module is not None]
    return configs[-1] if configs else None


def after_migrate(sender, app_config=None, using="default", plan=None, **kwargs) -> None:
    """A post_migrate receiver: ANALYZE once migrate has applied migrations.

    Django sends post_migrate once per app, in app order: this acts on the
    last one only. flush sends it too, without a plan (tables just emptied:
    nothing to learn), and a migrate with nothing to apply has an empty plan."""
    from django.db import connections

    if not plan or app_config is not _last_app():
        return
    connection = connections[using]
    if connection.vendor == "sqlite":
        analyze(connection)
