"""Helpers for real-browser tests: logging in through the form, screenshots."""

from __future__ import annotations

import os
from pathlib import Path

SHOTS = Path(os.environ.get("SHOTS_DIR", "/tmp/shots"))


def log_in(page, username="alice", password="pw-alice-123"):
    """Log in through the login form, as a person would."""
    page.goto("/login/")
    page.get_by_label("Username").fill(username)
    page.get_by_label("Password").fill(password)
    page.get_by_role("button", name="Log in").click()
    page.wait_for_url(lambda url: "/login/" not in url)


def shot(page, name: str, full_page=True) -> Path:
    """A screenshot in SHOTS_DIR (outside the repo) for a human to look at."""
    SHOTS.mkdir(parents=True, exist_ok=True)
    path = SHOTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=full_page)
    return path
