"""Full-text search of the gallery's prompts (issue 26; generations/search.py).

SQLite: an FTS5 table with the trigram tokenizer (case-insensitive
substrings of three characters or more, what the search matched before
with LIKE), whose rowid is the generation's id, filled from the existing
rows, and three triggers that keep it in step with the prompt
(params->>'prompt') when a generation is inserted, its params updated, or
it is deleted. A later migration that remakes core_generation on SQLite
keeps the triggers: the app's SQLite schema editor puts back the triggers a
table remake drops (playground/lib/sqlite/schema.py).

PostgreSQL: the GIN index on to_tsvector('english', prompt) that migration
0004 made; created here if it is missing (nothing to do otherwise)."""

from django.db import migrations

TABLE = "core_generation_prompt_search"
# What KT("params__prompt") reads on SQLite (nothing, rather than an error
# that would refuse the write, should params ever not be JSON).
PROMPT = "CASE WHEN json_valid({row}.params) THEN json_extract({row}.params, '$.prompt') END"

SQLITE = [
    f"CREATE VIRTUAL TABLE {TABLE} USING fts5(prompt, tokenize = 'trigram')",
    f"""CREATE TRIGGER {TABLE}_insert AFTER INSERT ON core_generation BEGIN
        INSERT INTO {TABLE} (rowid, prompt) VALUES (new.id, {PROMPT.format(row="new")});
    END""",
    f"""CREATE TRIGGER {TABLE}_update AFTER UPDATE OF params ON core_generation
    WHEN {PROMPT.format(row="old")} IS NOT {PROMPT.format(row="new")} BEGIN
        DELETE FROM {TABLE} WHERE rowid = old.id;
        INSERT INTO {TABLE} (rowid, prompt) VALUES (new.id, {PROMPT.format(row="new")});
    END""",
    f"""CREATE TRIGGER {TABLE}_delete AFTER DELETE ON core_generation BEGIN
        DELETE FROM {TABLE} WHERE rowid = old.id;
    END""",
    f"INSERT INTO {TABLE} (rowid, prompt) SELECT id, {PROMPT.format(row='core_generation')} FROM core_generation",
]
SQLITE_DROP = [f"DROP TRIGGER IF EXISTS {TABLE}_{name}" for name in ("insert", "update", "delete")] + [
    f"DROP TABLE IF EXISTS {TABLE}"]

# The expression gallery search queries (search.py, SearchVector(KT("params__prompt"), config="english")).
PG_INDEX = ("CREATE INDEX IF NOT EXISTS core_generation_prompt_fts ON core_generation USING gin "
            "(to_tsvector('english'::regconfig, COALESCE((params ->> 'prompt'), '')))")


def forwards(apps, schema_editor):
    vendor = schema_editor.connection.vendor
    if vendor == "sqlite":
        for sql in SQLITE:
            schema_editor.execute(sql, params=None)
    elif vendor == "postgresql":
        schema_editor.execute(PG_INDEX, params=None)


def backwards(apps, schema_editor):
    if schema_editor.connection.vendor == "sqlite":
        for sql in SQLITE_DROP:
            schema_editor.execute(sql, params=None)


class Migration(migrations.Migration):

    dependencies = [
        ('generations', '0010_queue_on_the_row'),
    ]

    operations = [
        migrations.RunPython(forwards, backwards),
    ]
