"""manage.py create_api_token USERNAME: a personal API token for scripts and
operators, printed once, alone on the last line of stdout (so
`TOKEN=$(manage.py create_api_token alice | tail -n1)` works).

The token is made in the user's current team: the one the app would pick
for them with no browser session (accounts/middleware.py: the team stored
in a session, else their first membership). The app keeps the current
team only in each browser session, so here it is their first membership
unless --team names another of their teams."""

from __future__ import annotations

from datetime import timedelta
import uuid

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError
from django.utils import timezone

from playground.accounts.apitokens import unknown_models
from playground.accounts.models import ApiToken, Membership


class Command(BaseCommand):
    help = "Create a personal API token for USERNAME and print it (alone on the last line)."

    def add_arguments(self, parser):
        parser.add_argument("username")
        parser.add_argument("--name", default="cli", help="The token's name (at most 100 characters; default: cli).")
        parser.add_argument("--team", help="One of the user's teams, by uuid or name (default: their current team).")
        parser.add_argument("--expires-days", type=int, help="Days until it stops working (default: never).")
        parser.add_argument("--models", default="",
                            help="Comma-separated provider/model keys it may use, e.g. kie/seedream-v4 (default: all).")
        parser.add_argument("--rate", type=int, help="Requests per minute, 1-10000 (default: the instance's).")

    def handle(self, username, name, team, expires_days, models, rate, **options):
        user = get_user_model().objects.filter(username=username).first()
        if user is None:
            raise CommandError(f"No user named {username!r}.")
        name = name.strip()
        if not name or len(name) > 100:
            raise CommandError("--name must be 1 to 100 characters.")
        if expires_days is not None and not 1 <= expires_days <= 36500:
            raise CommandError("--expires-days must be a whole number of days, 1 or more.")
        if rate is not None and not 1 <= rate <= 10000:
            raise CommandError("--rate must be between 1 and 10000 requests per minute.")
        allowed = [m.strip() for m in models.split(",") if m.strip()]
        unknown = unknown_models(allowed)
        if unknown:
            raise CommandError(f"Unknown model {', '.join(unknown)}: use provider/model keys such as kie/seedream-v4.")
        membership = self._membership(user, team)
        token, secret = ApiToken.issue(
            user, membership.team, name, allowed_models=allowed, rate_per_minute=rate,
            expires_at=timezone.now() + timedelta(days=expires_days) if expires_days else None)
        self.stdout.write(f"API token '{token.name}' (...{token.last4}) for {user.get_username()} "
                          f"in team {membership.team.name} ({membership.team.uuid}).")
        self.stdout.write(f"Expires: {token.expires_at:%Y-%m-%d %H:%M %Z}." if token.expires_at else "Expires: never.")
        self.stdout.write(f"Models: {', '.join(allowed) if allowed else 'all'}.")
        self.stdout.write("Shown once, stored hashed: copy it now. Send it as 'Authorization: Bearer <token>'.")
        self.stdout.write(secret)

    @staticmethod
    def _membership(user, team: str | None) -> Membership:
        mine = Membership.objects.filter(user=user).select_related("team").order_by("created_at")
        if team is None:
            first = mine.first()
            if first is None:
                raise CommandError(f"{user.get_username()} is in no team: add them to one first.")
            return first
        try:
            found = list(mine.filter(team__uuid=uuid.UUID(team)))
        except ValueError:
            found = list(mine.filter(team__name=team))
        if not found:
            raise CommandError(f"{user.get_username()} is not a member of a team {team!r}.")
        if len(found) > 1:
            raise CommandError(f"{user.get_username()} is in several teams named {team!r}: give its uuid.")
        return found[0]
