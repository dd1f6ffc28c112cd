"""The database session store, with its one lookup per request compiled once
(playground/lib/compiled.py): the same table and rows as Django's db
engine, so switching to it signs nobody out. Every signed-in request reads
its session, the page's job poll (one a second) included."""

import logging

from django.contrib.sessions.backends import db
from django.contrib.sessions.models import Session
from django.core.exceptions import SuspiciousOperation
from django.utils import timezone

from playground.lib.compiled import CompiledQuery

_current = CompiledQuery(lambda key, now: Session.objects.filter(session_key=key, expire_date__gt=now)[:1])


class SessionStore(db.SessionStore):
    def _get_session_from_db(self):
        try:
            if not isinstance(self.session_key, str):
                return super()._get_session_from_db()
            found = _current.run(key=self.session_key, now=timezone.now())
            if found:
                return found[0]
            raise Session.DoesNotExist
        except (Session.DoesNotExist, SuspiciousOperation) as e:
            if isinstance(e, SuspiciousOperation):
                logging.getLogger("django.security.%s" % e.__class__.__name__).warning(str(e))
            self._session_key = None
