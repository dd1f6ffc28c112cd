"""The two reads every signed-in request makes, in plain SQL: its session
(SESSION_ENGINE) and its user (AUTHENTICATION_BACKENDS).

Both are Django's documented extension points: a SessionStore subclass of
the database engine, a ModelBackend subclass. Each overrides one read with a
fixed SQL string and leaves the rest, writes included, to Django. The ORM's
query building cost ~0.4 ms of CPU a request for these two, about a third of
an unchanged job-card poll (docs/benchmarks.md, poll_cpu_vs_login)."""

from django.contrib.auth import get_user_model
from django.contrib.auth.backends import ModelBackend
from django.contrib.sessions.backends.db import SessionStore as DatabaseSessionStore
from django.core.exceptions import ValidationError
from django.db import connections, router
from django.utils import timezone


class SessionStore(DatabaseSessionStore):
    def load(self):
        """The session's data (decode() answers {} for damaged data, as
        Django's own load() does); a session unknown or expired goes through
        Django's own load(), which also forgets its key."""
        model = self.get_model_class()
        meta = model._meta
        db = router.db_for_read(model)
        expire = meta.get_field("expire_date").get_db_prep_value(timezone.now(), connections[db])
        quote = connections[db].ops.quote_name
        with connections[db].cursor() as cursor:
            cursor.execute(
                f"SELECT {quote(meta.get_field('session_data').column)} FROM {quote(meta.db_table)} "
                f"WHERE {quote(meta.pk.column)} = %s AND {quote(meta.get_field('expire_date').column)} > %s",
                [self.session_key, expire])
            row = cursor.fetchone()
        return self.decode(row[0]) if row else super().load()


class UserBackend(ModelBackend):
    def get_user(self, user_id):
        """As ModelBackend.get_user: the active user with this id, or None."""
        users = get_user_model()
        try:
            pk = users._meta.pk.to_python(user_id)
        except (ValidationError, TypeError, ValueError):  # a damaged session's id: no user
            return None
        quote = connections[router.db_for_read(users)].ops.quote_name
        sql = f"SELECT * FROM {quote(users._meta.db_table)} WHERE {quote(users._meta.pk.column)} = %s"
        user = next(iter(users.objects.raw(sql, [pk])), None)
        return user if user is not None and self.user_can_authenticate(user) else None
