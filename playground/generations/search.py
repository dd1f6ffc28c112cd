"""Full-text search of the gallery's prompts (the prompt is params->>'prompt'),
one interface over the two databases' own search indexes:

- SQLite (the embedded default): an FTS5 table with the trigram tokenizer,
  core_generation_prompt_search, whose rowid is the generation's id, kept in
  step with the prompt by triggers on core_generation (migration
  0011_prompt_search). A word of three characters or more is a quoted FTS5
  phrase: a case-insensitive substring of the prompt, exactly what the
  gallery's search matched before it had an index (LIKE '%word%'). Shorter
  words, which a trigram index cannot look up, are still matched that way.
- PostgreSQL (scale-out): the GIN index on to_tsvector('english', prompt)
  (migration 0004), queried with plainto_tsquery: words and their English
  forms ("boat" finds "boats"). A query of words the English parser drops
  ("the", "with", punctuation) is a case-insensitive match of each word.

Every word must be found (AND). Whatever the user types is data, never
query syntax: FTS5 phrases are quoted with their quotes doubled, and
plainto_tsquery reads plain text.

`matching(qs, text)` adds the condition and lets the planner choose.
`narrow(qs, text)` is what a page uses: it first asks the search index
alone for at most FEW + 1 matching ids, across all teams (a no-match search
costs one index lookup, whatever the team's size). At most FEW: the page is
those rows, by id, with every filter of qs (team, visibility...) applied and
sorted, a thousand rows at most. More: the word is common, and the page is
found walking the team's newest-first index, each row's id looked up among
the matches, until the page is full (long only for a word common in other
teams and rare in this one). A search of words of one or two characters
alone (SQLite) or of stop words alone (PostgreSQL) has no index to ask: it
is matched row by row as before. tests/plans reads these plans at 100,000
generations."""

from __future__ import annotations

from django.db import connection
from django.db.models import F
from django.db.models.expressions import RawSQL
from django.db.models.fields.json import KT

FEW = 1000
TABLE = "core_generation_prompt_search"  # SQLite: migration 0011_prompt_search
TRIGRAM = 3  # the shortest word an FTS5 trigram index can look up
CONFIG = "english"  # PostgreSQL: the configuration of the GIN index (migration 0004)


def words(text: str) -> list[str]:
    return (text or "").split()


def matching(qs, text: str):
    """The rows of qs whose prompt has every word of text (the condition
    alone: the planner chooses how to find them)."""
    return _search(qs, text, planned=False)


def narrow(qs, text: str):
    """matching(), planned for a page as the module says: one query to the
    search index first when text has a word it can look up."""
    return _search(qs, text, planned=True)


def _search(qs, text: str, planned: bool):
    found = words(text)
    if not found:
        return qs
    engine = _engine()
    if not engine.can_look_up(found):
        return _contains_each(qs, found)
    if not planned:
        return engine.rest(engine.matching(qs, found, walk=False), found)
    ids = engine.first_ids(qs.model, found, FEW + 1)
    if len(ids) <= FEW:
        return engine.rest(qs.filter(pk__in=ids), found)
    return engine.rest(engine.matching(qs, found, walk=True), found)


def _engine():
    return _PostgreSQL if connection.vendor == "postgresql" else _SQLite


def _contains_each(qs, found):
    for word in found:
        qs = qs.filter(params__prompt__icontains=word)
    return qs


class _SQLite:
    @staticmethod
    def can_look_up(found) -> bool:
        return any(len(w) >= TRIGRAM for w in found)

    @staticmethod
    def phrase(found) -> str:
        """The FTS5 query of the indexed words: each one a string in double
        quotes (its own quotes doubled), all of them required."""
        return " ".join('"' + w.replace('"', '""') + '"' for w in found if len(w) >= TRIGRAM)

    @classmethod
    def first_ids(cls, model, found, limit) -> list:
        with connection.cursor() as cursor:
            cursor.execute(f"SELECT rowid FROM {TABLE} WHERE {TABLE} MATCH %s LIMIT %s", [cls.phrase(found), limit])
            return [row[0] for row in cursor.fetchall()]

    @classmethod
    def matching(cls, qs, found, walk):
        ids = RawSQL(f"SELECT rowid FROM {TABLE} WHERE {TABLE} MATCH %s", (cls.phrase(found),))
        if walk:
            # id + 0: each row walked is checked against the matches, which
            # are never where the plan starts.
            return qs.alias(search_id=F("pk") + 0).filter(search_id__in=ids)
        return qs.filter(pk__in=ids)

    @staticmethod
    def rest(qs, found):
        """The words too short for the index, matched as before."""
        return _contains_each(qs, [w for w in found if len(w) < TRIGRAM])


class _PostgreSQL:
    @staticmethod
    def can_look_up(found) -> bool:
        """Whether the English parser keeps any word (a query of stop words
        alone would match nothing)."""
        with connection.cursor() as c:
            c.execute("SELECT numnode(plainto_tsquery(%s::regconfig, %s))", [CONFIG, " ".join(found)])
            return bool(c.fetchone()[0])

    @classmethod
    def first_ids(cls, model, found, limit) -> list:
        return list(cls.matching(model.objects.all(), found, walk=False).order_by()
                    .values_list("pk", flat=True)[:limit])

    @staticmethod
    def matching(qs, found, walk):
        from django.contrib.postgres.search import SearchQuery, SearchVector

        # The expression of the GIN index: to_tsvector('english', COALESCE(params->>'prompt', '')).
        return qs.alias(prompt_search=SearchVector(KT("params__prompt"), config=CONFIG)).filter(
            prompt_search=SearchQuery(" ".join(found), config=CONFIG, search_type="plain"))

    @staticmethod
    def rest(qs, found):
        return qs
