"""A queryset compiled once per shape gives what the ORM gives, with each
call's own values: rows, model instances with their select_related rows,
and the ORM itself for a shape it cannot reuse."""

from django.db import connection
from django.test.utils import CaptureQueriesContext

from playground.accounts.models import Membership
from playground.generations.models import Generation
from playground.lib.compiled import CompiledQuery

from tests import factories


def versions(user, team, ids):
    return Generation.objects.visible_to(user, team).filter(uuid__in=ids).order_by("created_at").values_list(
        "uuid", "updated_at", "status")


def test_rows_match_the_orm_for_each_call_s_own_values(team, user, bob, other_team, other_user):
    mine = [factories.job(team, user, "kie", "seedream-v4", prompt=f"a calm sea {i}") for i in range(3)]
    theirs = factories.job(other_team, other_user, "kie", "seedream-v4", prompt="a far island")
    Generation.objects.filter(pk=mine[1].pk).update(visibility="team")
    Generation.objects.filter(pk__in=[mine[0].pk, mine[2].pk]).update(visibility="private")
    q = CompiledQuery(versions)
    for who, where in [(user, team), (bob, team), (other_user, other_team), (user, other_team)]:
        for ids in ([g.uuid for g in mine], [mine[0].uuid, theirs.uuid, mine[2].uuid]):
            assert q.run(user=who, team=where, ids=ids) == list(versions(who, where, ids))
    assert [r[0] for r in q.run(user=user, team=team, ids=[g.uuid for g in mine])] == [g.uuid for g in mine]
    assert [r[0] for r in q.run(user=bob, team=team, ids=[g.uuid for g in mine])] == [mine[1].uuid]  # shared only


def test_instances_come_with_their_select_related_rows_and_one_query(team, user, other_team):
    other_team.memberships.create(user=user, role="member")

    def first(user, team_uuid):
        qs = Membership.objects.filter(user=user).select_related("team").order_by("created_at")
        return (qs.filter(team__uuid=team_uuid) if team_uuid else qs)[:1]

    q = CompiledQuery(first)
    for team_uuid in (None, other_team.uuid, team.uuid, None, other_team.uuid):
        q.run(user=user, team_uuid=team_uuid)  # the first of each shape is built by the ORM
        with CaptureQueriesContext(connection) as ctx:
            got, = q.run(user=user, team_uuid=team_uuid)
            assert got.team.name == (other_team.name if team_uuid == other_team.uuid else team.name)
        assert len(ctx.captured_queries) == 1
        assert got == list(first(user, team_uuid))[0] and got.user_id == user.pk


def test_a_shape_whose_values_the_sql_does_not_carry_as_given_uses_the_orm(team, user):
    factories.job(team, user, "kie", "seedream-v4", prompt="a calm sea")
    q = CompiledQuery(lambda user, team, word: Generation.objects.visible_to(user, team).filter(
        params__prompt__icontains=word).values_list("status", flat=False))
    for word in ("calm", "storm", "CALM"):
        assert q.run(user=user, team=team, word=word) == list(q.build(user=user, team=team, word=word))
