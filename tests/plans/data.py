"""A realistic big team, built in the test database in seconds: 100,000
generations of ten members (a tenth of them private, a few still active,
prompts from a small vocabulary so that words repeat as they do in life),
an image each, favorites, the ledger's reserve and capture (or release) of
each, 5,000 prompts in the library (every tenth generation run from one of
them), 5,000 comparisons, and a small second team beside it.

Rows are written with INSERT ... SELECT over a series of numbers (no model
instance per row): every column of the model is named, those given here by
an SQL expression of the row's number n, the others with the field's own
default. The app's triggers (the prompt search index) run as they would
for rows the app writes."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta

from django.contrib.auth import get_user_model
from django.db import connection, transaction
from django.utils import timezone

from playground.accounts.models import Membership, Team
from playground.compare.models import Comparison, Row
from playground.generations.models import Favorite, Generation, GenerationImage
from playground.ledger.models import Entry
from playground.library.models import Prompt, PromptVersion
from tests import factories

ADJECTIVES = ["red", "quiet", "misty", "golden", "stormy", "tiny", "ancient", "neon", "frozen", "lonely", "bright",
              "rusty", "velvet"]
SUBJECTS = ["lighthouse", "fox", "sailing boat", "castle", "robot", "tea house", "kite", "owl", "train", "garden",
            "violin", "dragon", "bicycle", "whale", "tower", "market", "bridge"]
PLACES = ["at dawn", "in the rain", "on a hill", "by the sea", "under the stars", "in a forest", "on Mars",
          "in a city"]
STYLES = ["watercolor", "35mm photo", "oil painting", "pixel art", "isometric render", "ink sketch"]
MODELS = [("kie", "seedream-v4"), ("kie", "qwen"), ("kvid", "text-to-image"), ("kawai", "generations")]
YEAR = 365 * 24 * 3600
RARE_WORD = "zeppelin"  # in 10 prompts of the big team
ABSENT_WORD = "unicorn"  # in no prompt


@dataclass
class BigTeam:
    team: Team
    owner: object
    members: list
    size: int
    other_team: Team
    versions: list = field(default_factory=list)


# --- SQL of the two databases ---------------------------------------------------------


def _postgres() -> bool:
    return connection.vendor == "postgresql"


def series(count: int) -> tuple[str, list]:
    """A FROM clause of count rows, numbered n = 0 .. count - 1."""
    if _postgres():
        return "generate_series(0, %s) AS s(n)", [count - 1]
    return ("(WITH RECURSIVE s(n) AS (SELECT 0 UNION ALL SELECT n + 1 FROM s WHERE n + 1 < %s) SELECT n FROM s) AS s",
            [count])


def new_uuid() -> str:
    return "gen_random_uuid()" if _postgres() else "lower(hex(randomblob(16)))"


def seconds_before(base: datetime, seconds_sql: str) -> tuple[str, list]:
    """base minus an SQL number of seconds, as the column stores it."""
    value = connection.ops.adapt_datetimefield_value(base)
    if _postgres():
        return f"(%s::timestamptz - ({seconds_sql}) * interval '1 second')", [value]
    return f"datetime(%s, '-' || ({seconds_sql}) || ' seconds')", [value]


def pick(values: list, index_sql: str) -> tuple[str, list]:
    """values[index] for an SQL index in range."""
    whens = " ".join(f"WHEN {i} THEN %s" for i in range(len(values)))
    return f"(CASE {index_sql} {whens} END)", list(values)


def json_object(**items: tuple[str, list]) -> tuple[str, list]:
    fn = "jsonb_build_object" if _postgres() else "json_object"
    parts, params = [], []
    for key, (sql, p) in items.items():
        parts.append(f"'{key}', {sql}")
        params += p
    return f"{fn}({', '.join(parts)})", params


def concat(*parts: tuple[str, list]) -> tuple[str, list]:
    return "(" + " || ".join(sql for sql, _ in parts) + ")", [p for _, ps in parts for p in ps]


def text(value: str) -> tuple[str, list]:
    return "%s", [value]


def insert(model, source: tuple[str, list], /, **exprs: tuple[str, list]) -> int:
    """INSERT INTO model's table every column (but its id) SELECT each one's
    expression (or the field's default) FROM source. Returns rows written."""
    columns, select, params = [], [], []
    for f in model._meta.concrete_fields:
        if f.primary_key:
            continue
        columns.append(connection.ops.quote_name(f.column))
        if f.name in exprs:
            sql, p = exprs.pop(f.name)
        else:
            sql, p = "%s", [f.get_db_prep_save(f.get_default(), connection)]
        select.append(sql)
        params += p
    assert not exprs, f"not fields of {model.__name__}: {sorted(exprs)}"
    sql = (f"INSERT INTO {connection.ops.quote_name(model._meta.db_table)} ({', '.join(columns)}) "
           f"SELECT {', '.join(select)} FROM {source[0]}")
    with connection.cursor() as cursor:
        cursor.execute(sql, params + source[1])
        return cursor.rowcount


# --- the rows -------------------------------------------------------------------------


def generations(team: Team, members: list, count: int, now: datetime) -> int:
    """count generations over the last year (about 5 minutes apart at
    100,000), the newest (highest n, highest id) created last; the last 20
    still active."""
    prompt = concat(text("a "), pick(ADJECTIVES, "(n %% 13)"), text(" "), pick(SUBJECTS, "((n / 13) %% 17)"),
                    text(" "), pick(PLACES, "((n / 221) %% 8)"), text(", "), pick(STYLES, "((n / 7) %% 6)"),
                    (f"(CASE WHEN n %% 10000 = 77 THEN ' with a {RARE_WORD}' ELSE '' END)", []),
                    text(", take "), ("n", []))
    status = (f"(CASE WHEN n >= {count - 20} THEN %s WHEN n %% 17 = 0 THEN %s ELSE %s END)",
              [Generation.RUNNING, Generation.FAILED, Generation.SUCCEEDED])
    created = seconds_before(now, f"{YEAR // count} * ({count} - n)")
    return insert(
        Generation, series(count),
        uuid=(new_uuid(), []), team=("%s", [team.pk]), owner=pick([m.pk for m in members], f"(n %% {len(members)})"),
        provider=pick([p for p, _ in MODELS], "(n %% 4)"), model=pick([m for _, m in MODELS], "(n %% 4)"),
        params=json_object(prompt=prompt, aspect_ratio=text("1:1")),
        visibility=("(CASE WHEN n %% 10 = 3 THEN %s ELSE %s END)", [Generation.PRIVATE, Generation.SHARED]),
        status=status, has_input=("(n %% 9 = 0)", []), cost_estimate=("3.5", []),
        callback_token=concat(text(f"cb-{team.pk}-"), ("n", [])),
        created_at=created, updated_at=created, due_at=created, finished_at=created,
    )


def images(team: Team) -> int:
    return insert(
        GenerationImage, (f"{Generation._meta.db_table} g WHERE g.team_id = %s", [team.pk]),
        uuid=(new_uuid(), []), generation=("g.id", []), file=text("x.png"), thumbnail=text("x.webp"),
        content_type=text("image/png"), width=("1024", []), height=("1024", []), bytes=("1000", []),
        sha256=text("0" * 64), created_at=("g.created_at", []))


def favorites(team: Team, user) -> int:
    return insert(
        Favorite, (f"{Generation._meta.db_table} g WHERE g.team_id = %s AND g.id %% 7 = 0", [team.pk]),
        user=("%s", [user.pk]), generation=("g.id", []), created_at=("g.created_at", []))


def ledger(team: Team, members: list) -> int:
    """A reserve and (for a finished job) a capture or a release per generation."""
    names = {m.pk: m.username for m in members}
    username = pick(list(names.values()), "(CASE g.owner_id " + " ".join(
        f"WHEN {pk} THEN {i}" for i, pk in enumerate(names)) + " END)")
    unit = pick(["kie_credit", "kie_credit", "kvid_credit", "USD"], "(g.id %% 4)")
    written = 0
    for kind, where in ((Entry.RESERVE, ""), (Entry.CAPTURE, " AND g.status = 'succeeded'"),
                        (Entry.RELEASE, " AND g.status = 'failed'")):
        written += insert(
            Entry, (f"{Generation._meta.db_table} g WHERE g.team_id = %s{where}", [team.pk]),
            uuid=(new_uuid(), []), kind=text(kind), team=("g.team_id", []), user=("g.owner_id", []),
            username=username, generation=("g.id", []), generation_uuid=("g.uuid", []), provider=("g.provider", []),
            model=("g.model", []), unit=unit, amount=("3.5", []),
            estimate=("3.5", []) if kind == Entry.CAPTURE else ("NULL", []),
            basis=text(Entry.ESTIMATE if kind == Entry.CAPTURE else ""), created_at=("g.created_at", []))
    return written


def library(team: Team, members: list, count: int, now: datetime) -> list:
    """count prompts of the team, one version each, the current one."""
    prompts = Prompt.objects.bulk_create(
        [Prompt(team=team, owner=members[i % len(members)], title=f"prompt {i}",
                visibility=Prompt.PRIVATE if i % 10 == 3 else Prompt.SHARED,
                created_at=now - timedelta(minutes=count - i), updated_at=now - timedelta(minutes=count - i))
         for i in range(count)], batch_size=2000)
    versions = PromptVersion.objects.bulk_create(
        [PromptVersion(prompt=p, number=1, text=f"a red kite {i}", provider="kie", model="seedream-v4",
                       tags_text="|kite|", created_by=p.owner) for i, p in enumerate(prompts)], batch_size=2000)
    for p, v in zip(prompts, versions):
        p.current = v
    Prompt.objects.bulk_update(prompts, ["current"], batch_size=2000)
    return versions


def comparisons(team: Team, members: list, count: int, now: datetime) -> None:
    comps = Comparison.objects.bulk_create(
        [Comparison(team=team, owner=members[i % len(members)], name=f"comparison {i}",
                    visibility=Comparison.PRIVATE if i % 10 == 3 else Comparison.SHARED,
                    created=now - timedelta(minutes=count - i)) for i in range(count)], batch_size=2000)
    Row.objects.bulk_create([Row(comparison=c, index=0, prompt="a calm lake", seed=i) for i, c in enumerate(comps)],
                            batch_size=2000)


def build(size: int = 100_000, *, small: int = 2_000, prompts: int = 5_000) -> BigTeam:
    """The big team (an owner and nine members) and a small other team."""
    now = timezone.now().replace(microsecond=0)
    owner = factories.user("big-owner")
    members = [owner] + [factories.user(f"big-member-{i}") for i in range(9)]
    team = factories.team("Big", owner=owner, members=members[1:])
    other_owner = factories.user("small-owner")
    other = factories.team("Small", owner=other_owner)
    generations(other, [other_owner], small, now - timedelta(days=30))
    generations(team, members, size, now)
    for t in (other, team):
        images(t)
        ledger(t, members if t is team else [other_owner])
    favorites(team, owner)
    versions = library(team, members, prompts, now)
    comparisons(team, members, prompts, now)
    runs(team, versions[:2000])
    return BigTeam(team=team, owner=owner, members=members, size=size, other_team=other, versions=versions)


def runs(team: Team, versions: list, every: int = 10) -> None:
    """Every tenth generation of the team was run from a library version,
    the versions taken in turn (about five runs each)."""
    column = Generation._meta.get_field("prompt_version_uuid")
    ids = Generation.objects.filter(team=team).order_by("id").values_list("id", flat=True)[::every]
    rows = [(column.get_db_prep_save(versions[i % len(versions)].uuid, connection), pk) for i, pk in enumerate(ids)]
    with connection.cursor() as cursor:
        cursor.executemany(f"UPDATE {Generation._meta.db_table} SET prompt_version_uuid = %s WHERE id = %s", rows)


def remove(big: BigTeam) -> None:
    """Every row build() wrote, in plain DELETEs (the ORM would read each
    of the 100,000 ids to cascade)."""
    teams = [big.team.pk, big.other_team.pk]
    marks = ", ".join(["%s"] * len(teams))
    gen, prompt = Generation._meta.db_table, Prompt._meta.db_table
    of_generations = f"generation_id IN (SELECT id FROM {gen} WHERE team_id IN ({marks}))"
    with transaction.atomic(), connection.cursor() as cursor:
        for table, where in ((Entry._meta.db_table, f"team_id IN ({marks})"),
                             (Favorite._meta.db_table, of_generations),
                             (GenerationImage._meta.db_table, of_generations),
                             (Row._meta.db_table, f"comparison_id IN (SELECT id FROM {Comparison._meta.db_table} "
                                                  f"WHERE team_id IN ({marks}))"),
                             (Comparison._meta.db_table, f"team_id IN ({marks})")):
            cursor.execute(f"DELETE FROM {table} WHERE {where}", teams)
        cursor.execute(f"UPDATE {prompt} SET current_id = NULL WHERE team_id IN ({marks})", teams)
        cursor.execute(f"DELETE FROM {PromptVersion._meta.db_table} WHERE prompt_id IN "
                       f"(SELECT id FROM {prompt} WHERE team_id IN ({marks}))", teams)
        cursor.execute(f"DELETE FROM {prompt} WHERE team_id IN ({marks})", teams)
        cursor.execute(f"DELETE FROM {gen} WHERE team_id IN ({marks})", teams)
    users = [m.pk for m in big.members] + [m.user_id for m in big.other_team.memberships.all()]
    Membership.objects.filter(team_id__in=teams).delete()
    Team.objects.filter(pk__in=teams).delete()
    get_user_model().objects.filter(pk__in=users).delete()
