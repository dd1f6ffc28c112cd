"""Failed-login throttling on top of django-axes.

Axes records each failed login (username, address, user agent) and asks
this handler whether a request is locked. Two locks, each with its own limit:

- per account: LOGIN_FAILURE_LIMIT failures for one username, from anywhere;
- per address: LOGIN_FAILURE_LIMIT_PER_ADDRESS failures from one address,
  whatever the usernames (higher: an office shares one address).

Both count failures no older than LOGIN_LOCKOUT_MINUTES since the last one.
A successful login clears the account's own failures only (not the
address's: logging into one's own account must not reset a guessing run
against another). A team owner unlocks a member with unlock_user().
"""

from __future__ import annotations

from datetime import timedelta
import functools
import ipaddress
import math

from axes.handlers.database import AxesDatabaseHandler
from axes.helpers import get_client_ip_address, get_client_username
from axes.models import AccessAttempt
from django.conf import settings
from django.contrib.auth.forms import AuthenticationForm
from django.db.models import Max, Sum
from django.shortcuts import render
from django.utils import timezone


def _limits() -> dict[str, int]:
    return {"username": settings.LOGIN_FAILURE_LIMIT, "ip_address": settings.LOGIN_FAILURE_LIMIT_PER_ADDRESS}


def _window_start():
    return timezone.now() - timedelta(minutes=settings.LOGIN_LOCKOUT_MINUTES)


def _recent(**filters):
    return AccessAttempt.objects.filter(attempt_time__gte=_window_start(), **filters)


def failures(**filters) -> int:
    """Failed logins in the current window matching username= or ip_address=."""
    return _recent(**filters).aggregate(n=Sum("failures_since_start"))["n"] or 0


def locks(username: str | None, ip_address: str | None) -> list[str]:
    """Which locks hold for this username and address: "username", "ip_address"."""
    values = {"username": username, "ip_address": ip_address}
    return [param for param, limit in _limits().items()
            if values[param] is not None and failures(**{param: values[param]}) >= limit]


class LoginThrottleHandler(AxesDatabaseHandler):
    def get_failures(self, request, credentials=None) -> int:
        """Axes compares this with AXES_FAILURE_LIMIT: report the limit when
        either lock holds, else nothing."""
        username = get_client_username(request, credentials)
        locked = locks(username, getattr(request, "axes_ip_address", None))
        return settings.AXES_FAILURE_LIMIT if locked else 0

    def user_logged_in(self, sender, request, user, **kwargs):
        super().user_logged_in(sender, request, user, **kwargs)
        AccessAttempt.objects.filter(username=user.get_username()).delete()


def unlock_user(username: str) -> int:
    """Forget an account's failed logins: its lock goes, and its failures no
    longer count towards any address's lock. Returns the rows removed."""
    count, _ = AccessAttempt.objects.filter(username=username).delete()
    return count


def locked_usernames(usernames) -> set[str]:
    """Which of these accounts are locked (one query)."""
    rows = (_recent(username__in=list(usernames)).values("username")
            .annotate(n=Sum("failures_since_start")).filter(n__gte=settings.LOGIN_FAILURE_LIMIT))
    return {r["username"] for r in rows}


def client_ip(request) -> str | None:
    """The client's address, the one rule for every use of it (RELIABILITY 12).

    The connection's own address (REMOTE_ADDR: the web server reads no
    forwarded header itself), unless BEHIND_PROXY and the connection comes
    from one of TRUSTED_PROXIES: then the entry that proxy appended to
    X-Forwarded-For (the right-most), and so on for PROXY_COUNT proxies, each
    hop counting only if the address before it is a trusted proxy too.
    Entries further left were written by the client and can be forged; the
    `Forwarded` header is never read."""
    remote = request.META.get("REMOTE_ADDR")
    if not settings.BEHIND_PROXY:
        return remote
    entries = [e.strip() for e in request.META.get("HTTP_X_FORWARDED_FOR", "").split(",") if e.strip()]
    address = remote
    for _ in range(max(settings.PROXY_COUNT, 1)):
        if not entries or not is_trusted_proxy(address):
            break
        try:
            address = str(ipaddress.ip_address(entries.pop()))
        except ValueError:
            break
    return address


def is_trusted_proxy(address: str | None) -> bool:
    """Whether a connection from `address` comes from one of TRUSTED_PROXIES."""
    try:
        ip = ipaddress.ip_address(address or "")
    except ValueError:
        return False
    if ip.version == 6 and ip.ipv4_mapped:  # a dual-stack socket's IPv4 peer
        ip = ip.ipv4_mapped
    return any(ip in net for net in _networks(tuple(settings.TRUSTED_PROXIES)))


@functools.lru_cache(maxsize=8)
def _networks(proxies: tuple[str, ...]) -> tuple:
    return tuple(ipaddress.ip_network(p, strict=False) for p in proxies)


def minutes_left(username: str | None, ip_address: str | None, which: list[str]) -> int:
    """Whole minutes until the lock(s) lift: the window after the last failure."""
    filters = [{"username": username}] if "username" in which else []
    if "ip_address" in which:
        filters.append({"ip_address": ip_address})
    times = [t for f in filters if (t := _recent(**f).aggregate(t=Max("attempt_time"))["t"]) is not None]
    latest = max(times, default=None)
    if latest is None:
        return settings.LOGIN_LOCKOUT_MINUTES
    left = latest + timedelta(minutes=settings.LOGIN_LOCKOUT_MINUTES) - timezone.now()
    return max(1, math.ceil(left.total_seconds() / 60))


def lockout_message(username: str | None, ip_address: str | None) -> str:
    which = locks(username, ip_address) or ["username"]
    n = minutes_left(username, ip_address, which)
    when = f"{n} minute{'s' if n != 1 else ''}"
    if "username" in which:
        return (f"Too many failed log-in attempts for this account. Try again in {when}, "
                "or ask a team owner to unlock it on their Team page.")
    return f"Too many failed log-in attempts from your network address. Try again in {when}."


def lockout_response(request, original_response=None, credentials=None):
    """The login page again, with the reason and when to retry (HTTP 429)."""
    username = get_client_username(request, credentials)
    ip = getattr(request, "axes_ip_address", None) or get_client_ip_address(request)
    form = AuthenticationForm(request, initial={"username": username or ""})
    return render(request, "registration/login.html", {
        "form": form, "locked_out": lockout_message(username, ip),
        "next": request.POST.get("next", request.GET.get("next", "")),
    }, status=429)
