"""INSERTs and UPDATEs compiled before the transaction they run in.

On SQLite a transaction holds the database's one writer lock from its BEGIN
(IMMEDIATE) to its COMMIT, and every other writer (the task workers' submits
and polls) waits for it. Creating a job (its row, its reservation, its first
task) held the lock about 17 ms on a slow machine, of which the SQL itself
took under 4: the rest was Django building the statements (the compiler,
each field's value prepared for the database). A PreparedInsert does that
part first, outside the transaction; inside, only the statement runs.

As Model.save() does, pre_save is sent (here, before compiling: django-tasks-db
fills a task row's run_after in it) and post_save after the INSERT; a custom
save() method is not called (callers use it only where that adds nothing on
an insert). Values that can only be known inside the transaction (the id of
a row inserted just before) are named `late` and given to run().
"""

from __future__ import annotations

from django.db import connections, router, transaction
from django.db.models import signals, sql


class PreparedInsert:
    """One model instance's INSERT, compiled now, run by run()."""

    def __init__(self, obj, *, late: tuple[str, ...] = (), using: str | None = None):
        model = type(obj)
        meta = obj._meta
        self.obj = obj
        self.using = using or router.db_for_write(model, instance=obj)
        connection = connections[self.using]
        if not connection.features.can_return_columns_from_insert:  # pragma: no cover - SQLite and PostgreSQL can
            raise NotImplementedError("PreparedInsert needs INSERT ... RETURNING")
        signals.pre_save.send(sender=model, instance=obj, raw=False, using=self.using, update_fields=None)
        pk_set = obj._is_pk_set(meta)
        fields = [f for f in meta.local_concrete_fields if not f.generated and (pk_set or f is not meta.auto_field)]
        self.returning = meta.db_returning_fields
        query = sql.InsertQuery(model)
        query.insert_values(fields, [obj])
        self.compiler = query.get_compiler(using=self.using)
        self.compiler.returning_fields = self.returning
        [(self.sql, params)] = self.compiler.as_sql()  # pre_save (auto_now_add and the like) runs here
        self.params = tuple(params)
        self.returning_params = getattr(self.compiler, "returning_params", ())
        # Each field is one plain placeholder and one parameter, in order, so
        # a late field's value is the parameter at its field's position.
        if self.sql.count("%s") != len(self.params) or len(self.params) != len(fields) + len(self.returning_params):
            raise ValueError(f"{model.__name__}: a field is not a plain placeholder; save() it instead")
        by_name = {f.name: i for i, f in enumerate(fields)}
        self.late = {name: (by_name[name], meta.get_field(name)) for name in late}
        opts = query.get_meta()
        self.converters = self.compiler.get_converters([f.get_col(opts.db_table) for f in self.returning])

    def run(self, **late):
        """Insert the row (inside the caller's transaction) and return the
        instance, saved: its id and other returned fields set."""
        connection = connections[self.using]
        params = self.params
        if late:
            if set(late) != set(self.late):
                raise TypeError(f"run() needs the late fields {sorted(self.late)}, got {sorted(late)}")
            params = list(params)
            for name, value in late.items():
                i, field = self.late[name]
                setattr(self.obj, field.attname, value)
                params[i] = field.get_db_prep_save(value, connection=connection)
        elif self.late:
            raise TypeError(f"run() needs the late fields {sorted(self.late)}")
        with connection.cursor() as cursor:
            cursor.execute(self.sql, params)
            if self.returning:  # an id the database assigns, say
                rows = [connection.ops.fetch_returned_insert_columns(cursor, self.returning_params)]
                if self.converters:
                    rows = list(self.compiler.apply_converters(rows, self.converters))
                for value, field in zip(rows[0], self.returning):
                    setattr(self.obj, field.attname, value)
        self.obj._state.adding = False
        self.obj._state.db = self.using
        signals.post_save.send(sender=type(self.obj), instance=self.obj, created=True, update_fields=None, raw=False,
                               using=self.using)
        return self.obj


class PreparedUpdate:
    """queryset.update(**changes), compiled now, run by run() (which returns
    the number of rows changed, as update() does). One table only: an update
    of a parent model's fields is refused."""

    def __init__(self, queryset, **changes):
        queryset._for_write = True
        self.using = queryset.db
        query = queryset.query.chain(sql.UpdateQuery)
        query.add_update_values(changes)
        if query.related_updates:
            raise ValueError("PreparedUpdate updates one table; use update()")
        query.clear_select_clause()
        self.sql, self.params = query.get_compiler(self.using).as_sql()

    def run(self) -> int:
        with transaction.mark_for_rollback_on_error(using=self.using):
            with connections[self.using].cursor() as cursor:
                cursor.execute(self.sql, self.params)
                return cursor.rowcount
