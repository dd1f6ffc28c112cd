"""A team at 100,000 generations against one at 500, side by side in one
database and one process (the Django test Client, the app's own settings):
the unchanged card poll (poll_ratio_100k), and the team gallery's first
page, a page deep in its keyset (half-way down) and a text search that
matches nothing (gallery_ratio_100k). The two teams' requests alternate, so
a busy machine slows both; each figure is the median at 100k over the
median at 500. The rows are written as bulk inserts, the way an import
would; nothing runs ANALYZE (what the app does about planner statistics is
the app's)."""

from __future__ import annotations

from datetime import timedelta
import time

from .common import RUN, median

NO_MATCH = "quokka"  # in no prompt


def make_team(name: str, members: int = 9):
    """A team, its owner and its members (users named for this run)."""
    from django.contrib.auth import get_user_model

    from playground.accounts.models import Membership, Team

    users = get_user_model().objects
    owner = users.create_user(f"bench-{name}-{RUN}")
    team = Team.objects.create(name=f"Bench {name}")
    Membership.objects.create(team=team, user=owner, role="owner")
    people = [owner]
    for i in range(members):
        people.append(users.create_user(f"bench-{name}-{i}-{RUN}"))
        Membership.objects.create(team=team, user=people[-1], role="member")
    return team, people


def fill(team, people, count: int, newest_at=None) -> None:
    """count finished generations with one image each, 10 s apart, older
    first (the newest have the highest ids, as in life), owned in turn by the
    team's people, every 10th private, every 7th a favorite of the owner."""
    from django.utils import timezone

    from playground.generations.models import Favorite, Generation, GenerationImage

    models = [("kie", "seedream-v4"), ("kie", "qwen"), ("kvid", "text-to-image"), ("kawai", "generations")]
    newest_at = newest_at or timezone.now() - timedelta(hours=1)
    for start in range(0, count, 5000):
        batch = []
        for i in range(start, min(count, start + 5000)):
            provider, model = models[i % 4]
            batch.append(Generation(team=team, owner=people[i % len(people)], provider=provider, model=model,
                                    params={"prompt": f"bench tile {i} of a quiet harbour"},
                                    status=Generation.SUCCEEDED, visibility="private" if i % 10 == 3 else "team",
                                    created_at=newest_at - timedelta(seconds=10 * (count - i))))
        Generation.objects.bulk_create(batch, batch_size=2000)
        GenerationImage.objects.bulk_create([
            GenerationImage(generation=g, file="x.png", thumbnail="x.webp", content_type="image/png",
                            width=1024, height=1024, bytes=1000, sha256="0" * 64) for g in batch
        ], batch_size=2000)
        Favorite.objects.bulk_create([Favorite(user=people[0], generation=g) for g in batch[::7]], batch_size=2000)


def running(team, user, n: int) -> list:
    """n running jobs of user, newer than anything fill made (the page's cards)."""
    from playground.generations.models import Generation

    return [Generation.objects.create(team=team, owner=user, provider="kie", model="seedream-v4",
                                      params={"prompt": f"bench running {i}"}, status=Generation.RUNNING,
                                      phase="generating", provider_job_id=f"bench-{RUN}-{team.pk}-{i}")
            for i in range(n)]


def poll_url(cards) -> str:
    """The playground page's one poll for its active cards, nothing changed (answered 204)."""
    from urllib.parse import urlencode

    from playground.generations.models import Generation
    from playground.generations.polling import stamp

    fresh = Generation.objects.filter(pk__in=[g.pk for g in cards])
    newest = max(cards, key=lambda g: (g.created_at, g.pk))
    return "/jobs/poll?" + urlencode([("c", f"{g.uuid}:{stamp(g.updated_at)}") for g in fresh]
                                     + [("since", stamp(newest.created_at))])


def team_figures(sizes=(500, 100_000), polls: int = 100, pages: int = 30, cards: int = 10,
                 cleanup: bool = False) -> dict:
    from django.db import connection
    from django.test import Client

    from playground.generations import gallery_filters
    from playground.generations.models import Generation

    sides = []
    for size in sizes:
        t = time.perf_counter()
        team, people = make_team(f"team{size}")
        fill(team, people, size)
        jobs = running(team, people[0], cards)
        client = Client()
        client.force_login(people[0])
        first = "/generations/?scope=team"
        middle = Generation.objects.visible_to(people[0], team).order_by("-created_at", "-id")[size // 2]
        urls = {"poll": poll_url(jobs), "first page": first,
                "deep page": f"{first}&after={gallery_filters.cursor_of(middle)}",
                "no-match search": f"{first}&q={NO_MATCH}"}
        queries = {}
        for name, url in urls.items():
            count = [0]

            def counter(execute, sql, params, many, context):
                count[0] += 1
                return execute(sql, params, many, context)

            with connection.execute_wrapper(counter):
                r = client.get(url, HTTP_HX_REQUEST="true") if name == "poll" else client.get(url)
            cards_shown = r.content.count(b'data-testid="card"')
            expected = 204 if name == "poll" else 200
            assert r.status_code == expected, (name, size, r.status_code)
            if name in ("first page", "deep page"):
                assert cards_shown == gallery_filters.PAGE_SIZE, (name, size, cards_shown)
            if name == "no-match search":
                assert cards_shown == 0, (name, size, cards_shown)
            queries[name] = count[0]
        print(f"  team of {size:,} generations made in {time.perf_counter() - t:.1f} s "
              f"(queries: {', '.join(f'{k} {v}' for k, v in queries.items())})", flush=True)
        sides.append({"size": size, "team": team, "client": client, "urls": urls})

    times = {(side["size"], name): [] for side in sides for name in sides[0]["urls"]}
    for name in sides[0]["urls"]:
        for _ in range(polls if name == "poll" else pages):
            for side in sides:  # alternately: both sides see the same machine
                t = time.perf_counter()
                if name == "poll":
                    side["client"].get(side["urls"][name], HTTP_HX_REQUEST="true")
                else:
                    side["client"].get(side["urls"][name])
                times[(side["size"], name)].append((time.perf_counter() - t) * 1000)
    small, big = sizes
    out = {"ms": {k: median(v) for k, v in times.items()}}
    for name in sides[0]["urls"]:
        out[name] = out["ms"][(big, name)] / out["ms"][(small, name)]
        print(f"  {name:<16} median {out['ms'][(small, name)]:7.2f} ms at {small:,}, "
              f"{out['ms'][(big, name)]:7.2f} ms at {big:,}: {out[name]:.2f}x", flush=True)
    if cleanup:  # a reused database (PostgreSQL) keeps none of them
        t = time.perf_counter()
        Generation.objects.filter(team__in=[side["team"] for side in sides]).delete()
        print(f"  (their rows deleted in {time.perf_counter() - t:.1f} s)", flush=True)
    return out
