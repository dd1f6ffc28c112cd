from __future__ import annotations

import hashlib
import uuid

from django.conf import settings
from django.db import models
from django.urls import reverse
from django.utils import timezone

from playground.providers import registry

from playground.lib import crypto


class Team(models.Model):
    uuid = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    name = models.CharField(max_length=100)
    adult_content_enabled = models.BooleanField(default=False)
    # Budget periods (month, week, day) start at midnight in this zone.
    time_zone = models.CharField(max_length=64, default=settings.TIME_ZONE,
                                 help_text="Budget periods start at midnight in this time zone.")
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        db_table = "core_team"

    def __str__(self):
        return self.name

    def role_of(self, user) -> str | None:
        m = self.memberships.filter(user=user).first()
        return m.role if m else None

    @property
    def zone(self):
        """The team's time zone (UTC if the stored name is not known here)."""
        import zoneinfo

        try:
            return zoneinfo.ZoneInfo(self.time_zone or "UTC")
        except (zoneinfo.ZoneInfoNotFoundError, ValueError):
            return zoneinfo.ZoneInfo("UTC")

    def is_owner(self, user) -> bool:
        return self.role_of(user) == Membership.OWNER


class Membership(models.Model):
    OWNER, MEMBER = "owner", "member"
    ROLES = [(OWNER, "Owner"), (MEMBER, "Member")]

    team = models.ForeignKey(Team, models.CASCADE, related_name="memberships")
    user = models.ForeignKey(settings.AUTH_USER_MODEL, models.CASCADE, related_name="memberships")
    role = models.CharField(max_length=10, choices=ROLES, default=MEMBER)
    # The member's own default for new generations in this team: shared with
    # the team (the default) or private. Each generation can be changed after.
    share_by_default = models.BooleanField(default=True)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        db_table = "core_membership"
        constraints = [models.UniqueConstraint(fields=["team", "user"], name="one_membership_per_team")]

    def __str__(self):
        return f"{self.user} in {self.team} ({self.role})"


class ProviderCredential(models.Model):
    """A team's own key (and optional base URL) for one provider.

    The key is stored encrypted and is write-only: pages show key_last4."""

    uuid = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    team = models.ForeignKey(Team, models.CASCADE, related_name="credentials")
    provider = models.CharField(max_length=40)
    api_key_encrypted = models.TextField(blank=True)
    key_last4 = models.CharField(max_length=4, blank=True)
    base_url = models.URLField(blank=True)
    updated_at = models.DateTimeField(auto_now=True)
    updated_by = models.ForeignKey(settings.AUTH_USER_MODEL, models.SET_NULL, null=True, blank=True)

    class Meta:
        db_table = "core_providercredential"
        constraints = [models.UniqueConstraint(fields=["team", "provider"], name="one_credential_per_provider")]

    def __repr__(self):  # never the key
        return f"<ProviderCredential {self.team_id}/{self.provider} ...{self.key_last4}>"

    __str__ = __repr__

    def set_key(self, api_key: str):
        api_key = api_key.strip()
        self.api_key_encrypted = crypto.encrypt(api_key) if api_key else ""
        self.key_last4 = api_key[-4:] if api_key else ""

    def api_key(self) -> str:
        return crypto.decrypt(self.api_key_encrypted) if self.api_key_encrypted else ""


class Endpoint:
    """Where and how a team reaches a provider: its own credential, the
    instance-wide one from the environment, or the local sandbox."""

    def __init__(self, provider: str, base_url: str, api_key: str, source: str):
        self.provider = provider
        self.base_url = base_url
        self._api_key = api_key
        self.source = source  # "team", "instance" or "sandbox"

    def __repr__(self):
        return f"<Endpoint {self.provider} {self.source} {self.base_url}>"

    @classmethod
    def resolve(cls, team: Team, provider: str, *, with_key: bool = True) -> "Endpoint":
        """with_key=False finds where requests go without decrypting anything
        (for "copy as code" and pages). A provider that is no longer
        configured is a "config" error: its jobs fail cleanly."""
        try:
            adapter = registry.get(provider)
        except LookupError:
            from playground.providers.errors import ProviderError
            from playground.providers.removed import PROVIDER_GONE

            raise ProviderError("config", PROVIDER_GONE) from None
        cred = ProviderCredential.objects.filter(team=team, provider=provider).first()
        env = settings.PROVIDER_ENV.get(provider, {})
        if cred and cred.api_key_encrypted:
            key = cred.api_key() if with_key else ""  # raises CredentialError: fail closed
            base = cred.base_url or env.get("base_url") or adapter.default_base_url
            return cls(provider, base, key, "team")
        if env.get("api_key"):
            return cls(provider, env.get("base_url") or adapter.default_base_url, env["api_key"] if with_key else "",
                       "instance")
        base = settings.SANDBOX_URL + adapter.sandbox_prefix
        return cls(provider, base, settings.SANDBOX_API_KEY if with_key else "", "sandbox")

    def adapter(self, **kwargs):
        if self.source == "team" and "client" not in kwargs:
            # A team-supplied base URL: every connection is checked where it
            # is made (one lookup, a checked address; RELIABILITY 6).
            from playground.lib.net.guard import provider_client

            kwargs["client"] = provider_client()
        return registry.get(self.provider)(base_url=self.base_url, api_key=self._api_key, **kwargs)

    def scrubbed(self, err):
        """The error with this key removed from its message, code and field
        in any spelling (a provider may echo the key back, upper-cased or
        broken up), and the message capped (RELIABILITY 7)."""
        from playground.lib.scrub import provider_text

        key = self._api_key
        err.message = provider_text(err.message, key) or ""
        err.args = (err.message,)
        err.code = provider_text(err.code, key, 60)
        err.field = provider_text(err.field, key, 60)
        return err

    def check_base_url(self):
        """A team's own base URL must not point inside our network (the
        sandbox excepted, compared by scheme, host and port): a request to
        it is made from our servers. Checked again at connect time."""
        if self.source != "team":
            return
        from playground.providers.errors import ProviderError

        from playground.lib.net.addresses import EgressRefused
        from playground.lib.net.guard import check_base_url

        try:
            check_base_url(self.base_url)
        except EgressRefused as e:
            raise ProviderError("config", f"The team's base URL for this provider is refused: {e}") from None

    def rate_bucket(self) -> str:
        return bucket_id(self.provider, self.base_url, self._api_key)


def endpoint_source(team: Team, provider: str) -> str:
    """Where the team's requests to a provider go ("team", "instance",
    "sandbox"), or "broken" when its stored key cannot be decrypted."""
    try:
        return Endpoint.resolve(team, provider).source
    except crypto.CredentialError:
        return "broken"


def bucket_id(provider: str, base_url: str, api_key: str) -> str:
    """An id for one key at one endpoint that reveals nothing of the key."""
    return hashlib.sha256(f"{provider}|{base_url}|{api_key}".encode()).hexdigest()[:32]


class Invite(models.Model):
    """A link that brings one person into a team: single use, expiring.

    The UUID in the link is the secret (122 random bits): whoever holds the
    link can use it once, before expires_at. An owner revokes it by deleting."""

    uuid = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    team = models.ForeignKey(Team, models.CASCADE, related_name="invites")
    role = models.CharField(max_length=10, choices=Membership.ROLES, default=Membership.MEMBER)
    note = models.CharField(max_length=100, blank=True)  # who it is for, shown to owners only
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, models.SET_NULL, null=True, blank=True, related_name="+")
    created_at = models.DateTimeField(default=timezone.now)
    expires_at = models.DateTimeField()
    used_at = models.DateTimeField(null=True, blank=True)
    used_by = models.ForeignKey(settings.AUTH_USER_MODEL, models.SET_NULL, null=True, blank=True, related_name="+")

    class Meta:
        db_table = "core_invite"
        ordering = ["-created_at"]

    def __str__(self):
        return f"Invite to {self.team} ({self.role})"

    def get_absolute_url(self):
        return reverse("invite", args=[self.uuid])

    @classmethod
    def pending(cls, team):
        return cls.objects.filter(team=team, used_at__isnull=True, expires_at__gt=timezone.now())

    @property
    def state(self) -> str:
        if self.used_at:
            return "used"
        if self.expires_at <= timezone.now():
            return "expired"
        return "pending"

    def claim(self, user) -> bool:
        """Use the invite for `user`, once: a conditional update, so that two
        people opening the same link at the same moment cannot both get in."""
        now = timezone.now()
        done = Invite.objects.filter(pk=self.pk, used_at__isnull=True, expires_at__gt=now).update(
            used_at=now, used_by=user)
        if done:
            self.used_at, self.used_by = now, user
        return bool(done)


class ApiToken(models.Model):
    """A personal token for the OpenAI-compatible API (/v1/...).

    The secret is shown once, when it is made; only its SHA-256 is kept (the
    secret has 256 random bits, so a fast hash is enough) and its last four
    characters, to tell tokens apart. A token acts for its user in one team;
    it stops working when revoked, when it expires, or when the user leaves
    the team."""

    PREFIX = "ipg_"

    uuid = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    user = models.ForeignKey(settings.AUTH_USER_MODEL, models.CASCADE, related_name="api_tokens")
    team = models.ForeignKey(Team, models.CASCADE, related_name="api_tokens")
    name = models.CharField(max_length=100)
    token_hash = models.CharField(max_length=64, unique=True, editable=False)
    last4 = models.CharField(max_length=4, editable=False)
    created_at = models.DateTimeField(default=timezone.now)
    expires_at = models.DateTimeField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)
    last_used_at = models.DateTimeField(null=True, blank=True)
    # Model keys ("kie/seedream-v4") or team aliases this token may use; empty: all.
    allowed_models = models.JSONField(default=list, blank=True)
    # Requests per minute; null: the instance default (API_TOKEN_RATE_PER_MINUTE).
    rate_per_minute = models.PositiveIntegerField(null=True, blank=True)

    class Meta:
        db_table = "core_apitoken"
        ordering = ["-created_at"]

    def __repr__(self):  # never the secret
        return f"<ApiToken {self.name!r} ...{self.last4}>"

    __str__ = __repr__

    @staticmethod
    def hash(secret: str) -> str:
        return hashlib.sha256(secret.encode()).hexdigest()

    @classmethod
    def issue(cls, user, team, name: str, **fields) -> tuple["ApiToken", str]:
        """Make a token; returns it and its secret (shown to the user once)."""
        import secrets

        secret = cls.PREFIX + secrets.token_urlsafe(32)
        token = cls.objects.create(user=user, team=team, name=name, token_hash=cls.hash(secret),
                                   last4=secret[-4:], **fields)
        return token, secret

    @classmethod
    def find(cls, secret: str) -> "ApiToken | None":
        """The token for a presented secret, if any (revoked or expired ones
        included: callers say which)."""
        if not secret or len(secret) > 200:
            return None
        return cls.objects.select_related("user", "team").filter(token_hash=cls.hash(secret)).first()

    @property
    def state(self) -> str:
        if self.revoked_at:
            return "revoked"
        if self.expires_at and self.expires_at <= timezone.now():
            return "expired"
        return "active"

    def revoke(self) -> bool:
        now = timezone.now()
        done = ApiToken.objects.filter(pk=self.pk, revoked_at__isnull=True).update(revoked_at=now)
        if done:
            self.revoked_at = now
        return bool(done)
