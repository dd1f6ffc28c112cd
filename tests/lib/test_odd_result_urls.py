"""A result URL that cannot be parsed or must not be fetched ends its download
at once as "paid, no image" (RELIABILITY 6), never as an internal error that
is retried for minutes and then releases what the provider charged for.

Issue 23, failure 5: httpx refused such URLs with InvalidURL (not an
httpx.HTTPError), urlsplit with ValueError, idna with IDNAError; none was a
DownloadError, so the job retried 8 times over 9.5 minutes as "internal" and
then failed with its reservation released."""

from __future__ import annotations

import json

import pytest

from playground.generations.models import Generation
from playground.ledger.models import Entry
from playground.lib.net import addresses, guard
from playground.lib.net.download import DownloadError, check_url, fetch

from tests.factories import job
from tests.helpers import run_tasks, start_sandbox, use_sandbox

ODD = [
    "http://012.0.0.1:8790/a.png",  # a leading zero: octal to some parsers (10.0.0.1), refused by httpx
    "http://１２７.０.０.１:8790/a.png",  # full-width digits (127.0.0.1 after NFKC)
    "http://１２７.0.0.1:8790/a.png",
    "http://[::1",
    "http://[::1/a.png",
    "http://[::1]x/a.png",
    "http://[v1.x]/a.png",
    "http://[fe80::1%25eth0]:8790/a.png",  # a zone id
    "http://[127.0.0.1]/a.png",
    "http://a b/a.png",
    "http://a\tb/a.png",
    "http://" + "a" * 64 + ".example/a.png",  # a label longer than 63
    "http://" + ("a" * 60 + ".") * 5 + "example/a.png",  # a host longer than 253
    "http://host:99999/a.png",
    "http://host:0/a.png",
    "http://host:+80/a.png",
    "http://host:٨٠/a.png",  # Arabic-Indic digits in the port
    "http://host:80:80/a.png",
    "http:///a.png",
    "http://:8790/a.png",
    "http://./a.png",
    "http://a..b/a.png",
    "http://.a/a.png",
    "http://bücher.example/a.png",  # non-ASCII hosts
    "http://℀.example/a.png",
    "http://exa\u200bmple.com/a.png",  # a zero-width space
    "http://xn--zz.example/a.png",  # an invalid A-label
    "http://ex%61mple.com/a.png",
    "http://exa\x00mple.com/a.png",  # control characters
    "http://example.com/a\nb.png",
    "http://example.com\r\nX-Injected: 1/a.png",
    "http://example.com/a\x7f.png",
    "http://example.com/a.png\x00",
    "http://0x7f.1/a.png",  # numbers that are not a dotted IPv4 address
    "http://127.1:8790/a.png",
    "http://2130706433:8790/a.png",
    "http://1.2.3.4.5/a.png",
    "http://256.0.0.1/a.png",
    "",
    "http:",
    "http://",
    " http://example.com/a.png",
]


class Refused(AssertionError):
    pass


@pytest.fixture
def no_network(monkeypatch):
    """Any lookup or connection fails the test: an odd URL is refused before."""
    calls = []

    def lookup(*args, **kwargs):
        calls.append(("getaddrinfo", args))
        raise Refused(f"looked up {args!r}")

    def connect(self, host, port, *args, **kwargs):
        calls.append(("connect", host, port))
        raise Refused(f"connected to {host!r}:{port}")

    monkeypatch.setattr(addresses.socket, "getaddrinfo", lookup)
    monkeypatch.setattr(guard.GuardedBackend, "connect_tcp", connect)
    return calls


@pytest.mark.parametrize("url", ODD)
def test_an_odd_result_url_is_a_final_download_failure_without_a_connection(url, no_network, settings):
    # Even with every plausible reading of the host allowed as a private host.
    allowed = ["127.0.0.1:8790", "10.0.0.1:8790", "012.0.0.1:8790", "[::1]:8790", "host:80", "host:99999"]
    with pytest.raises(DownloadError) as caught:
        fetch(url, allowed_private=allowed)
    assert not caught.value.transient and not caught.value.expired
    assert no_network == []
    with pytest.raises(DownloadError) as caught:
        check_url(url, allowed_private=allowed)
    assert not caught.value.transient and not caught.value.expired
    assert no_network == []


@pytest.mark.parametrize("location", ["http://012.0.0.1:8790/b.png", "http://[::1", "http://a b/b.png",
                                      "http://0x7f.1/b.png", "http://host:99999/b.png"])
def test_an_odd_redirect_is_a_final_download_failure(location):
    from tests.lib.test_safe_downloads import _Server

    with _Server({"/a.png": (302, {"Location": location}, b"")}) as s:
        with pytest.raises(DownloadError) as caught:
            fetch(f"http://{s.host}/a.png", allowed_private=[s.host])
    assert not caught.value.transient and not caught.value.expired


@pytest.mark.parametrize("url", [
    "http://127.0.0.1:8790/kie/files/task_0a/0.png?expires=1900000000&sig=ab%2Fcd",
    "https://cdn.example.com/a/b%20c.png?x=1&y=%E2%9C%93#frag",
    "https://CDN.Example.com./a.png",
    "http://[2606:4700:4700::1111]:8080/a.png",
    "https://img_bucket.s3.example-cdn.net/a.png",
    "https://tempfile.aiquickdraw.com/s/2b1f_ab-c.png",
])
def test_ordinary_result_urls_still_reach_the_guarded_connection(url, no_network):
    with pytest.raises(Refused):
        fetch(url, allowed_private=["127.0.0.1:8790"])
    assert [c[0] for c in no_network] == ["connect"]


# --- the pipeline: paid, no image, at the first download -----------------------------------


class RewriteResults:
    """Around the sandbox: every result URL a record-info answer names is
    replaced by `url`, as a provider returning an odd URL would."""

    def __init__(self, sb, url):
        self.app, self.url, self.downloads = sb.app, url, 0
        sb.server.set_app(self)

    def _rewrite(self, value):
        if isinstance(value, dict):
            return {k: self._rewrite(v) for k, v in value.items()}
        if isinstance(value, list):
            return [self._rewrite(v) for v in value]
        if isinstance(value, str) and "/files/" in value:
            return self.url
        return value

    def __call__(self, environ, start_response):
        path = environ.get("PATH_INFO", "")
        if "/files/" in path:
            self.downloads += 1
        if "record-info" not in path:
            return self.app(environ, start_response)
        captured = {}

        def keep(status, headers, exc_info=None):
            captured.update(status=status, headers=headers)
            return lambda data: None

        body = b"".join(self.app(environ, keep))
        try:
            body = json.dumps(self._rewrite(json.loads(body))).encode()
        except ValueError:
            pass
        headers = [(k, v) for k, v in captured["headers"] if k.lower() != "content-length"]
        start_response(captured["status"], headers + [("Content-Length", str(len(body)))])
        return [body]


@pytest.mark.parametrize("url", [
    "http://012.0.0.1:8790/a.png", "http://１２７.０.０.１:8790/a.png", "http://[::1", "http://a b/a.png",
    "http://host:99999/a.png", "http://exa\x00mple.com/a.png",
])
def test_a_kie_job_with_an_odd_result_url_is_paid_no_image_at_once(url, team, user, settings, tmp_path):
    from django_tasks_db.models import DBTaskResult

    sb = start_sandbox(tmp_path)
    try:
        use_sandbox(settings, sb)
        rewriter = RewriteResults(sb, url)
        gen = job(team, user, prompt="a quiet harbour at dawn")
        run_tasks(until=gen)
    finally:
        sb.stop()
    assert gen.status == Generation.FAILED
    assert (gen.error_kind, gen.error_code) == ("download", "image_not_saved")
    assert "paid, no image" in gen.error_message
    assert gen.attempts == 0  # the first download ended it: no retry
    assert rewriter.downloads == 0
    assert not DBTaskResult.objects.filter(status="READY").exists()  # nothing queued for it
    entries = Entry.objects.filter(generation_uuid=gen.uuid)
    captures = list(entries.filter(kind=Entry.CAPTURE))
    assert len(captures) == 1
    assert captures[0].no_image is True
    assert captures[0].amount == gen.cost_estimate > 0  # KIE reports no figure: its price for the model
    assert not entries.filter(kind=Entry.RELEASE).exists()
