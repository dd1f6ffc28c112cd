"""One long-lived httpx client per adapter class per process
(process_client), never one per task, and never a parent's after a fork."""

from __future__ import annotations

import os
import threading
import weakref

import httpx

# Building an httpx.Client builds an SSL context (~20 ms of CPU). Every
# adapter of one class in one process shares one client, created on first
# use. Keyed by process id too: a process forked after creating one (a
# preloaded gunicorn, a worker pool) must never use its parent's sockets.
_clients: "weakref.WeakKeyDictionary[type, tuple[int, httpx.Client]]" = weakref.WeakKeyDictionary()
_clients_lock = threading.Lock()


def _after_fork_in_child() -> None:
    # A fork while another thread held the lock would leave it held forever
    # in the child; the parent's clients are not the child's either.
    global _clients_lock
    _clients_lock = threading.Lock()
    _clients.clear()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)


def process_client(cls: type) -> httpx.Client:
    """The one client of this adapter class (an adapter.Adapter subclass:
    its timeout) in this process."""
    pid = os.getpid()
    entry = _clients.get(cls)
    if entry is None or entry[0] != pid:
        with _clients_lock:
            entry = _clients.get(cls)
            if entry is None or entry[0] != pid:  # none yet, or the parent's: never reuse that
                from playground.lib.net.guard import plain_client

                # One long-lived client per process and provider, never one per task.
                entry = (pid, plain_client(timeout=cls.timeout, follow_redirects=False))
                _clients[cls] = entry
    return entry[1]
