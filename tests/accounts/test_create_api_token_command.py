"""manage.py create_api_token: a token in the user's current team, the
secret alone on the last line, clear errors."""

from io import StringIO

from django.core.management import CommandError, call_command
import pytest

from playground.accounts.models import ApiToken


def run(*args):
    out = StringIO()
    call_command("create_api_token", *args, stdout=out)
    return out.getvalue().splitlines()


def test_it_prints_the_secret_alone_on_the_last_line_for_the_users_current_team(team, user, other_team):
    other_team.memberships.create(user=user, role="member")  # joined later: not the current team
    lines = run("alice")
    secret = lines[-1]
    token = ApiToken.find(secret)
    assert token.user == user and token.team == team and token.name == "cli" and token.state == "active"
    assert token.expires_at is None and token.allowed_models == [] and token.rate_per_minute is None
    assert f"...{token.last4}" in lines[0] and "Alpha" in lines[0]
    assert secret.startswith("ipg_") and " " not in secret and not any(secret in line for line in lines[:-1])


def test_options_name_the_team_expiry_models_and_rate(team, user, other_team):
    other_team.memberships.create(user=user, role="member")
    token = ApiToken.find(run("alice", "--name", "nightly", "--team", "Beta", "--expires-days", "30",
                              "--models", "kie/seedream-v4, kawai/generations", "--rate", "12")[-1])
    assert (token.team, token.name, token.allowed_models, token.rate_per_minute) == (
        other_team, "nightly", ["kie/seedream-v4", "kawai/generations"], 12)
    assert 29 <= (token.expires_at - token.created_at).days <= 30
    by_uuid = ApiToken.find(run("alice", "--team", str(team.uuid))[-1])
    assert by_uuid.team == team


@pytest.mark.parametrize("args, error", [
    (["nobody"], "No user named 'nobody'"),
    (["mallory", "--team", "Alpha"], "not a member of a team 'Alpha'"),
    (["alice", "--models", "kie/seedream-v4,kie/nope"], "Unknown model kie/nope"),
    (["alice", "--expires-days", "0"], "--expires-days"),
    (["alice", "--name", "x" * 101], "--name must be"),
])
def test_errors_say_what_is_wrong_and_make_nothing(team, user, other_user, args, error):
    with pytest.raises(CommandError, match=error):
        run(*args)
    assert not ApiToken.objects.exists()


def test_a_user_in_no_team_is_told_so(db):
    from tests import factories

    factories.user("loner")
    with pytest.raises(CommandError, match="loner is in no team"):
        run("loner")
