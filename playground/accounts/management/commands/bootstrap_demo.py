import secrets

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand

from playground.accounts.models import Membership, Team


class Command(BaseCommand):
    help = "Create the demo team and user if missing, and print the login."

    def add_arguments(self, parser):
        parser.add_argument("--username", default="demo")

    def handle(self, username, **options):
        path = settings.DATA_DIR / "demo_password"
        if not path.exists():
            path.write_text(secrets.token_urlsafe(9))
            path.chmod(0o600)
        password = path.read_text().strip()
        User = get_user_model()
        user, created = User.objects.get_or_create(username=username)
        if created:
            user.set_password(password)
            user.save()
        team = Team.objects.filter(memberships__user=user).first()
        if team is None:
            team = Team.objects.create(name="Demo team")
            Membership.objects.create(team=team, user=user, role=Membership.OWNER)
        login = f"username {username!r}, password {password!r}" if user.check_password(password) else (
            f"username {username!r} (password changed since it was created)"
        )
        self.stdout.write(self.style.SUCCESS(f"Demo login: {login} - team {team.name!r}"))
