"""Django's SQLite schema editor, which keeps the database's triggers.

SQLite cannot alter most columns in place, so Django remakes the table: it
creates the new table, copies the rows (same ids), drops the old table and
renames the new one. Dropping a table drops its triggers. A trigger that
keeps something in step with the table (the gallery's prompt search index,
generations/migrations/0011_prompt_search) would silently stop after the
next migration that changes a field of it. Here every schema change that
may remake tables puts back, with their own SQL, the triggers it dropped
whose table is still there."""

from __future__ import annotations

from contextlib import contextmanager

from django.db.backends.sqlite3 import schema


class DatabaseSchemaEditor(schema.DatabaseSchemaEditor):
    def triggers(self) -> dict[str, tuple[str, str]]:
        """{name: (table, SQL)} of the database's triggers."""
        with self.connection.cursor() as cursor:
            cursor.execute("SELECT name, tbl_name, sql FROM sqlite_master WHERE type = 'trigger'")
            return {name: (table, sql) for name, table, sql in cursor.fetchall()}

    def tables(self) -> set[str]:
        with self.connection.cursor() as cursor:
            cursor.execute("SELECT name FROM sqlite_master WHERE type = 'table'")
            return {name for (name,) in cursor.fetchall()}

    @contextmanager
    def keeping_triggers(self):
        before = self.triggers()
        yield
        if not before:
            return
        lost = {name: spec for name, spec in before.items() if name not in self.triggers()}
        if lost:
            tables = self.tables()
            for table, sql in lost.values():
                if table in tables:
                    self.execute(sql, params=None)

    def add_field(self, model, field):
        with self.keeping_triggers():
            super().add_field(model, field)

    def remove_field(self, model, field):
        with self.keeping_triggers():
            super().remove_field(model, field)

    def alter_field(self, model, old_field, new_field, strict=False):
        with self.keeping_triggers():
            super().alter_field(model, old_field, new_field, strict=strict)

    def add_constraint(self, model, constraint):
        with self.keeping_triggers():
            super().add_constraint(model, constraint)

    def remove_constraint(self, model, constraint):
        with self.keeping_triggers():
            super().remove_constraint(model, constraint)
