"""Reading query plans: the queries a page runs (caught with their own
parameters by a public execute wrapper), each one's plan from the database
itself (SQLite's EXPLAIN QUERY PLAN, PostgreSQL's EXPLAIN (FORMAT JSON)),
as a list of the steps that read a table or an index."""

from __future__ import annotations

from contextlib import contextmanager
from dataclasses import dataclass
import json
import re

from django.db import connection


@dataclass(frozen=True)
class Step:
    """One read: of a table (relation), through an index or not."""
    relation: str
    index: str  # "" for a scan of the table itself, "rowid" by primary key (SQLite), "virtual" (FTS5)
    full: bool  # the whole table (or the whole index, in its order) is walked
    text: str
    limited: bool = False  # PostgreSQL: under a Limit node (a walk that stops once it has enough rows)

    def __str__(self):
        return self.text


@dataclass
class Query:
    sql: str
    params: tuple

    def plan(self) -> list[Step]:
        return plan(self.sql, self.params)

    def __str__(self):
        return f"{self.sql} {self.params}"


@contextmanager
def queries():
    """The queries run in the block (SELECTs only), with their parameters."""
    caught: list[Query] = []

    def catch(execute, sql, params, many, context):
        if not many and sql.lstrip().upper().startswith(("SELECT", "WITH")):
            caught.append(Query(sql, tuple(params or ())))
        return execute(sql, params, many, context)

    with connection.execute_wrapper(catch):
        yield caught


def plan(sql: str, params=()) -> list[Step]:
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute("EXPLAIN (FORMAT JSON) " + sql, params)
            document = cursor.fetchone()[0]
            return list(_pg_steps((json.loads(document) if isinstance(document, str) else document)[0]["Plan"]))
        cursor.execute("EXPLAIN QUERY PLAN " + sql, params)
        return [_sqlite_step(row[3]) for row in cursor.fetchall() if row[3].startswith(("SCAN", "SEARCH"))]


SQLITE_STEP = re.compile(r"(SCAN|SEARCH) (\S+)(?: AS \S+)?(?: USING (?:COVERING )?INDEX (\S+)|"
                         r" USING (INTEGER PRIMARY KEY)| (VIRTUAL TABLE) INDEX)?")


def _sqlite_step(detail: str) -> Step:
    m = SQLITE_STEP.match(detail)
    kind, relation, index, rowid, virtual = m.groups()
    if rowid:
        index = "rowid"
    elif virtual:
        index = "virtual"
    # SCAN: the whole table or index is walked (a SEARCH seeks to a range);
    # a virtual table's SCAN is its own index answering the MATCH.
    return Step(relation, index or "", kind == "SCAN" and not virtual, detail)


def _pg_steps(node: dict, relation: str = "", limited: bool = False):
    kind = node["Node Type"]
    limited = limited or kind == "Limit"
    relation = node.get("Relation Name", relation)  # a Bitmap Index Scan reads its Bitmap Heap Scan's table
    # A Bitmap Heap Scan reads the rows its bitmap index scans (its children) found: they say which index.
    if (node.get("Relation Name") or node.get("Index Name")) and kind != "Bitmap Heap Scan":
        index = node.get("Index Name", "")
        yield Step(relation, index, kind == "Seq Scan", f"{kind} on {relation}" + (f" using {index}" if index else ""),
                   limited)
    for child in node.get("Plans", []):
        yield from _pg_steps(child, relation if kind.startswith("Bitmap") else "", limited)


def reads(steps: list[Step], relation: str) -> list[Step]:
    """The steps that read this table."""
    return [s for s in steps if s.relation == relation]


def indexes(table: str) -> dict[str, tuple[str, ...]]:
    """{index name: its columns} of a table (expression indexes: no columns)."""
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute(
                "SELECT i.relname, array_remove(array_agg(a.attname ORDER BY k.n), NULL) FROM pg_index x "
                "JOIN pg_class i ON i.oid = x.indexrelid JOIN pg_class t ON t.oid = x.indrelid "
                "CROSS JOIN LATERAL unnest(x.indkey) WITH ORDINALITY AS k(attnum, n) "
                "LEFT JOIN pg_attribute a ON a.attrelid = t.oid AND a.attnum = k.attnum "
                "WHERE t.relname = %s GROUP BY i.relname", [table])
            return {name: tuple(columns) for name, columns in cursor.fetchall()}
        cursor.execute(f"PRAGMA index_list({connection.ops.quote_name(table)})")
        names = [row[1] for row in cursor.fetchall()]
        out = {}
        for name in names:
            cursor.execute(f"PRAGMA index_info({connection.ops.quote_name(name)})")
            out[name] = tuple(row[2] for row in cursor.fetchall())
        return out


def index_on(table: str, *columns: str) -> str:
    """The name of the table's index on exactly these columns (Django names
    some of them with a hash, SQLite its unique ones by number)."""
    found = [name for name, cols in indexes(table).items() if cols == columns]
    assert len(found) == 1, (table, columns, indexes(table))
    return found[0]


def describe(steps: list[Step]) -> str:
    return "; ".join(map(str, steps))


# --- a page's plans -----------------------------------------------------------------


def plans(client, url: str, status=(200,)) -> list[tuple[Query, list[Step]]]:
    """Each SELECT the page runs, with its plan."""
    with queries() as caught:
        response = client.get(url)
    assert response.status_code in status, (url, response.status_code)
    return [(q, q.plan()) for q in caught]


def reading(found, table: str):
    """The queries that read the table, with their whole plans."""
    return [(q, steps) for q, steps in found if reads(steps, table)]


def indexes_read(found, table: str) -> set[str]:
    return {s.index for _, steps in reading(found, table) for s in reads(steps, table)}


def assert_never_walks(found, table: str):
    """No query reads the table in full: no SQLite SCAN, no PostgreSQL Seq Scan."""
    for q, steps in reading(found, table):
        assert not any(s.full for s in reads(steps, table)), f"{describe(steps)}\n{q}"


def share(table: str, team) -> float:
    """The part of the table's rows that are the team's."""
    with connection.cursor() as cursor:
        quoted = connection.ops.quote_name(table)
        cursor.execute(f"SELECT COUNT(*), SUM(CASE WHEN team_id = %s THEN 1 ELSE 0 END) FROM {quoted}", [team.pk])
        total, mine = cursor.fetchone()
        return (mine or 0) / total if total else 0.0
