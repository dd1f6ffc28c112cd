from __future__ import annotations

from datetime import timedelta
from decimal import Decimal
import secrets
import uuid

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.urls import reverse
from django.utils import timezone

from playground.providers import registry

from playground.accounts.models import Team
from playground.accounts.visibility import visible_queryset

from . import states


class Generation(models.Model):
    QUEUED, SUBMITTING, RUNNING = states.QUEUED, states.SUBMITTING, states.RUNNING
    SUCCEEDED, FAILED, CANCELED = states.SUCCEEDED, states.FAILED, states.CANCELED
    STATUSES = [
        (QUEUED, "Queued"), (SUBMITTING, "Submitting"), (RUNNING, "Running"),
        (SUCCEEDED, "Done"), (FAILED, "Failed"), (CANCELED, "Canceled"),
    ]
    ACTIVE = states.ACTIVE
    FINAL = states.FINAL
    PRIVATE, SHARED = "private", "team"
    VISIBILITIES = [(SHARED, "Shared with the team"), (PRIVATE, "Private")]

    uuid = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    team = models.ForeignKey(Team, models.CASCADE, related_name="generations")
    owner = models.ForeignKey(settings.AUTH_USER_MODEL, models.CASCADE, related_name="generations")
    objects = visible_queryset("team", "owner", "visibility").as_manager()  # .visible_to(user, team)
    provider = models.CharField(max_length=40)
    model = models.CharField(max_length=60)
    params = models.JSONField(default=dict)
    # Shared with the team (teammates see it in the team gallery) or private
    # to its owner. New jobs take the owner's default (Membership.share_by_default).
    visibility = models.CharField(max_length=8, choices=VISIBILITIES, default=SHARED)
    # Lineage: the generation this one remixed (its parameters again), and
    # the prompt-library version it was run from (a uuid: the library sits
    # above generations and is looked up by it, never imported here).
    remix_of = models.ForeignKey("self", models.SET_NULL, null=True, blank=True, related_name="remixes")
    prompt_version_uuid = models.UUIDField(null=True, blank=True, db_index=True)
    # Made through the OpenAI-compatible API with this token (lineage: "via API token X").
    api_token = models.ForeignKey("accounts.ApiToken", models.SET_NULL, null=True, blank=True,
                                  related_name="generations")
    status = models.CharField(max_length=12, choices=STATUSES, default=QUEUED, db_index=True)
    # What the provider last said, for the card: submitted, generating, waiting...
    phase = models.CharField(max_length=200, blank=True)
    # Why an active job waits (rate limit, backoff after an error, provider
    # still generating): read by the card and by callbacks, never parsed
    # out of phase. Set with phase by transition().
    wait_reason = models.CharField(max_length=12, choices=states.WAIT_REASONS, blank=True, default="")
    endpoint_source = models.CharField(max_length=10, blank=True)
    provider_job_id = models.CharField(max_length=200, blank=True)
    error_kind = models.CharField(max_length=30, blank=True)
    error_code = models.CharField(max_length=60, blank=True)
    error_message = models.TextField(blank=True)
    error_field = models.CharField(max_length=60, blank=True)
    # Adult content (an adult style was chosen): blurred in shared views.
    is_adult = models.BooleanField(default=False)
    # Took an input image (set by pipeline.create): the gallery's has-input filter.
    has_input = models.BooleanField(default=False)
    cost_estimate = models.DecimalField(max_digits=12, decimal_places=4, default=Decimal("0"))
    credits_used = models.DecimalField(max_digits=12, decimal_places=4, null=True, blank=True)
    callback_token = models.CharField(max_length=64, default=secrets.token_urlsafe, unique=True, editable=False)
    # One per rendered form: a double click or a resent POST creates one job.
    client_token = models.UUIDField(null=True, blank=True, editable=False)
    # The gallery image this generation took as input (pipelines: generate,
    # then upscale the result, then remove its background).
    source_image = models.ForeignKey("GenerationImage", models.SET_NULL, null=True, blank=True,
                                     related_name="derived")
    # Result URLs a synchronous provider returned, kept so that a worker that
    # dies before downloading them can be replaced without resubmitting.
    result_urls = models.JSONField(default=list, blank=True)
    attempts = models.PositiveIntegerField(default=0)  # transient failures retried so far
    created_at = models.DateTimeField(default=timezone.now, db_index=True)
    submitted_at = models.DateTimeField(null=True, blank=True)
    # Set when a user cancels a job the provider already has: providers have
    # no cancel call, so it is still tracked and its result and charge kept.
    canceled_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    updated_at = models.DateTimeField(auto_now=True)
    # The queue (pipeline.queue): the next step is due at due_at; a worker
    # working on the job holds it until lease_until, which its heartbeat renews.
    due_at = models.DateTimeField(default=timezone.now, db_index=True)
    lease_until = models.DateTimeField(null=True, blank=True)
    # Who holds the lease (the worker process working on it): its heartbeat
    # renews lease_until only while this still names it.
    held_by = models.CharField(max_length=64, blank=True)
    # The last callback that made the job ask the provider: replays within a
    # poll interval change nothing (RELIABILITY 5).
    nudged_at = models.DateTimeField(null=True, blank=True)
    # A provider job id named by a callback for a job whose own submit answer
    # was lost: only a claim until one status call confirms it (RELIABILITY 1).
    claimed_job_id = models.CharField(max_length=200, blank=True)
    # Adaptive polling: when a status call last found the job still
    # generating, and (once it succeeded) how long the provider took from
    # submit to done, as the provider reports it or as our polls bracket it.
    # The recent median per model sets when its next jobs are first polled.
    pending_seen_at = models.DateTimeField(null=True, blank=True)
    provider_seconds = models.FloatField(null=True, blank=True)
    # The provider's own estimate of this job's time, seconds after the
    # submit (kvid's estimated_time): when it is first expected done.
    estimated_seconds = models.FloatField(null=True, blank=True)

    class Meta:
        db_table = "core_generation"
        ordering = ["-created_at"]
        # The gallery's scopes, newest first, keyset-paginated on (created_at, id).
        indexes = [models.Index(fields=["team", "owner", "-created_at", "-id"], name="gen_team_owner_recent"),
                   models.Index(fields=["team", "-created_at", "-id"], name="gen_team_recent"),
                   # A model's recent provider times (adaptive polling).
                   models.Index(fields=["provider", "model", "-finished_at"], name="gen_model_recent_done",
                                condition=Q(provider_seconds__isnull=False)),
                   # The queue: active jobs by due time (pipeline.queue.due_steps)...
                   models.Index(fields=["due_at"], name="gen_due_active", condition=Q(status__in=states.ACTIVE)),
                   # ...and job ids a callback named, still to be confirmed (queue.due_claims).
                   models.Index(fields=["due_at"], name="gen_pending_claim", condition=~Q(claimed_job_id=""))]
        constraints = [models.UniqueConstraint(fields=["owner", "client_token"], name="one_job_per_form_submit")]

    def __str__(self):
        return f"{self.provider}/{self.model} {self.uuid} {self.status}"

    def get_absolute_url(self):
        return reverse("generation", args=[self.uuid])

    # -- descriptions --
    @property
    def adapter_class(self):
        """Its provider's adapter class, or a RemovedProvider named by the
        stored key when the provider is no longer configured."""
        return registry.get_or_removed(self.provider)

    @property
    def spec(self):
        """Its model's declaration, or a RemovedModel named by the stored key."""
        return registry.spec_or_removed(self.provider, self.model)

    @property
    def is_configured(self) -> bool:
        """False when its provider or model is no longer configured: shown
        with its stored names, and not offered for remixing."""
        from playground.providers.removed import is_removed

        return not is_removed(self.spec)

    @property
    def provider_label(self):
        return self.adapter_class.label

    @property
    def model_label(self):
        return self.spec.label

    @property
    def is_active(self):
        return self.status in self.ACTIVE

    @property
    def prompt(self):
        return self.params.get("prompt", "")

    @property
    def stage(self) -> str:
        """queued -> submitted -> generating -> done, as a user reads it."""
        if self.canceled_at and self.status == self.SUCCEEDED:
            return "canceled (finished anyway)"
        if self.canceled_at and self.is_active:
            return "canceled (still tracking)"
        if self.is_waiting_to_retry:
            return "waiting" if self.wait_reason == states.WAIT_RATE_LIMIT else "retrying"
        if self.status == self.QUEUED:
            return "queued"
        if self.status == self.SUBMITTING:
            return "submitting"
        if self.status == self.RUNNING:
            return self.phase or "submitted"
        return self.get_status_display().lower()

    @property
    def note(self) -> str:
        """What the job is waiting for, with a live countdown (the card is
        polled every second). A job running with the provider's own
        estimate (kvid's estimated_time) shows it, as the contract asks."""
        if not self.is_waiting_to_retry:
            if self.status == self.RUNNING and self.estimated_seconds:
                seconds = round(self.estimated_seconds)
                minutes, rest = divmod(seconds, 60)
                about = f"{seconds} s" if seconds < 60 else f"{minutes} min" + (f" {rest} s" if rest else "")
                return f"the provider estimates {about}"
            return ""
        left = round((self.due_at - timezone.now()).total_seconds())
        when = f"retrying in {left} s" if left >= 1 else "retrying now"
        if self.wait_reason == states.WAIT_RATE_LIMIT:
            return f"waiting for rate limit, {when}"
        # What failed, as the phase says it (without its countdown, which
        # was right when it was written).
        return f"{self.phase.rsplit(', retrying in ', 1)[0] or 'retrying after an error'}, {when}"

    @property
    def is_waiting_to_retry(self) -> bool:
        """Waiting out a rate limit or a backoff: a callback must not cut
        the wait short, and the card counts it down."""
        return self.is_active and self.wait_reason in states.RETRY_WAITS

    @property
    def cancel_summary(self) -> str:
        """What a canceled job (canceled while queued) went through. A job
        the provider refused and that waited to be sent again was sent: it
        must not read "canceled before it was sent". endpoint_source is set
        when the first request goes out and never cleared; attempts counts
        the refusals that were retried."""
        if not self.endpoint_source:
            return "Canceled before it was sent: nothing was charged."
        if self.attempts:
            tries = "1 refused attempt" if self.attempts == 1 else f"{self.attempts} refused attempts"
            return f"Canceled after {tries} to send it: nothing was charged."
        return "Canceled while waiting to send it again (the provider asked to wait): nothing was charged."

    @property
    def elapsed(self) -> timedelta:
        end = self.finished_at or timezone.now()
        return end - self.created_at

    @property
    def error_hint(self) -> str:
        from playground.providers.errors import ERROR_KINDS

        return ERROR_KINDS.get(self.error_kind, "")

    def input_images(self) -> dict:
        """{image parameter: InputImage or None}, looked up in the job's own team."""
        out = {}
        for p in self.spec.image_params():
            ref = self.params.get(p.name)
            if ref:
                out[p.name] = InputImage.objects.filter(team=self.team, uuid=ref).first()
        return out

    @property
    def can_cancel(self) -> bool:
        return self.is_active and not self.canceled_at

    def cancel(self) -> str:
        """Queued: nothing was sent, it just stops. Sent: the provider cannot be
        told, so it is tracked quietly and shown as canceled."""
        from django.db import transaction

        from playground.ledger import book

        with transaction.atomic():
            if self.transition(self.QUEUED, via="cancel", canceled_at=timezone.now(),
                               finished_at=timezone.now(), phase="", lease_until=None):
                book.release(self, note="canceled before it was sent")
                return "canceled"
        if self.transition((self.SUBMITTING, self.RUNNING), via="note_cancel", where=Q(canceled_at__isnull=True),
                           canceled_at=timezone.now()):
            self.refresh_from_db()
            return "tracking"
        self.refresh_from_db()
        return "too late"

    # -- state changes: each one a conditional update --
    def transition(self, from_statuses, *, via: str | None = None, where: Q | None = None, **changes) -> bool:
        """The only writer of status. Move to new values only if the status
        is still one of from_statuses (and where holds). The move must be in
        states.TRANSITIONS (via names it; without via, status= gives the
        target and the pair must be legal): any other raises
        states.IllegalTransition. A new phase without a wait_reason means
        the job is not waiting. Returns True for the single winner, whose
        instance then has the new values (those computed by the database
        read back)."""
        from_statuses, target = states.check(from_statuses, changes.pop("status", None), via)
        if target is not None:
            changes["status"] = target
        if "phase" in changes:
            changes.setdefault("wait_reason", states.WAIT_NONE)
        changes.setdefault("updated_at", timezone.now())
        rows = Generation.objects.filter(pk=self.pk, status__in=from_statuses)
        if where is not None:
            rows = rows.filter(where)
        won = rows.update(**changes) == 1
        if won:
            computed = [k for k, v in changes.items() if hasattr(v, "resolve_expression")]
            for k, v in changes.items():
                if k not in computed:
                    setattr(self, k, v)
            if computed:
                self.refresh_from_db(fields=computed)
        return won


class Favorite(models.Model):
    """A user's star on a generation (their own or a teammate's shared one)."""

    user = models.ForeignKey(settings.AUTH_USER_MODEL, models.CASCADE, related_name="favorites")
    generation = models.ForeignKey(Generation, models.CASCADE, related_name="favorites")
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["user", "generation"], name="one_favorite_per_user")]


class GenerationImage(models.Model):
    uuid = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    generation = models.ForeignKey(Generation, models.CASCADE, related_name="images")
    index = models.PositiveSmallIntegerField(default=0)
    file = models.FileField(upload_to="generations/", max_length=300)
    thumbnail = models.FileField(upload_to="generations/", max_length=300, blank=True)
    content_type = models.CharField(max_length=40)
    width = models.PositiveIntegerField()
    height = models.PositiveIntegerField()
    bytes = models.PositiveBigIntegerField()
    sha256 = models.CharField(max_length=64)
    created_at = models.DateTimeField(default=timezone.now)

    objects = visible_queryset("generation__team", "generation__owner", "generation__visibility").as_manager()

    class Meta:
        db_table = "core_generationimage"
        ordering = ["generation", "index"]
        constraints = [models.UniqueConstraint(fields=["generation", "index"], name="one_image_per_index")]
        # Images saved before an upgrade without a thumbnail (thumbnails.backfill).
        indexes = [models.Index(fields=["id"], name="image_thumbnail_missing", condition=Q(thumbnail=""))]

    def get_absolute_url(self):
        return reverse("image", args=[self.uuid])

    def thumbnail_url(self):
        return reverse("image_thumb", args=[self.uuid])


class InputImage(models.Model):
    """An image given to a model as input: uploaded (checked and re-encoded)
    or picked from the gallery ("use as input")."""

    uuid = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    team = models.ForeignKey(Team, models.CASCADE, related_name="input_images")
    owner = models.ForeignKey(settings.AUTH_USER_MODEL, models.CASCADE, related_name="input_images")
    file = models.FileField(upload_to="inputs/", max_length=300)
    content_type = models.CharField(max_length=40)
    width = models.PositiveIntegerField()
    height = models.PositiveIntegerField()
    bytes = models.PositiveBigIntegerField()
    sha256 = models.CharField(max_length=64)
    source = models.ForeignKey(GenerationImage, models.SET_NULL, null=True, blank=True, related_name="reuses")
    created_at = models.DateTimeField(default=timezone.now)

    objects = visible_queryset("team", "owner").as_manager()

    class Meta:
        db_table = "core_inputimage"
        ordering = ["-created_at"]

    def signed_url(self) -> str:
        """An unguessable URL that works without login until it expires, so
        that a provider can fetch the image."""
        from django.core import signing

        token = signing.dumps(str(self.uuid), salt="input-image", compress=False)
        return settings.PUBLIC_BASE_URL + reverse("input_image_public", args=[token])

    def as_input(self):
        from playground.providers.exchange import ImageInput

        def load():
            with self.file.open("rb") as fh:
                return fh.read()

        ext = self.file.name.rsplit(".", 1)[-1]
        return ImageInput(url=self.signed_url(), content_type=self.content_type, load=load, name=f"input.{ext}")

    @classmethod
    def from_bytes(cls, *, team, owner, data: bytes, source=None) -> "InputImage":
        from playground.lib.images import check_image

        # raises DownloadError with a clear message
        return cls.from_checked(team=team, owner=owner, img=check_image(data), source=source)

    @classmethod
    def from_checked(cls, *, team, owner, img, source=None) -> "InputImage":
        from django.core.files.base import ContentFile

        obj = cls(team=team, owner=owner, content_type=img.content_type, width=img.width, height=img.height,
                  bytes=len(img.data), sha256=img.sha256, source=source)
        obj.file.save(f"{team.uuid}/{uuid.uuid4().hex}.{img.extension}", ContentFile(img.data), save=False)
        obj.save()
        return obj


class RateBucket(models.Model):
    """One provider key at one endpoint (hashed); locked while slots are taken."""

    key = models.CharField(max_length=64, unique=True)

    class Meta:
        db_table = "core_ratebucket"


class RateSlot(models.Model):
    bucket = models.CharField(max_length=64)
    at = models.DateTimeField()

    class Meta:
        db_table = "core_rateslot"
        indexes = [models.Index(fields=["bucket", "at"])]
