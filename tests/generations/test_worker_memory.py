"""A task worker's memory (issue 10: RSS after 1,000 jobs / at start <= 1.1):
it loads its job code at start, and the pages of freed image buffers go back
to the system once it is idle, so image after image does not grow it."""

import json
import os
from pathlib import Path
import subprocess
import sys

import pytest

from playground.generations.warmup import is_task_worker

ROOT = Path(__file__).resolve().parents[2]

IMAGES_IN_A_WORKER = """
import json, os, pathlib, sys
import django
django.setup()
from playground.generations import warmup
from playground.lib.images import check_image

def rss_kib():
    for line in open("/proc/self/status"):
        if line.startswith("VmRSS:"):
            return int(line.split()[1])

warmup.warm_up()
start = rss_kib()
trim = warmup.IdleTrim(idle=0.0)  # the worker's, with no wait once idle
for _ in range(2):  # two tasks, each a batch of jobs
    trim.task_started()
    for _ in range(4):  # what a worker does with each job's image: its bytes, decoded, re-encoded, a thumbnail
        check_image(pathlib.Path(sys.argv[1]).read_bytes())
    busy = rss_kib()
    trim.task_ended()
assert trim.wait_for_trim(1, timeout=30)
print(json.dumps({"start": start, "busy": busy, "end": rss_kib(), "modules": sorted(m for m in ("playground.generations.jobs",
      "playground.providers.kie", "playground.providers.kvid") if m in __import__("sys").modules)}))
"""


def test_only_task_worker_commands_warm_up():
    assert is_task_worker(["manage.py", "db_worker", "--queue-name", "default"])
    assert is_task_worker(["manage.py", "rqworker"])
    assert not is_task_worker(["manage.py", "migrate"])
    assert not is_task_worker(["manage.py"])


def glibc() -> bool:
    try:
        return bool(os.confstr("CS_GNU_LIBC_VERSION"))
    except (ValueError, OSError, AttributeError):
        return False


@pytest.mark.skipif(not Path("/proc/self/status").exists() or not glibc(),
                    reason="RSS from /proc, the allocator policy of glibc")
def test_a_worker_does_not_grow_image_after_image(tmp_path):
    from PIL import Image

    image = tmp_path / "noise.png"
    # 2048 px: without the trim, glibc keeps the freed pages of its buffers (1.3x here),
    # as it should while the worker is busy
    Image.effect_noise((2048, 2048), 64).convert("RGB").save(image)
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "playground.settings", "DATA_DIR": str(tmp_path),
           "PYTHONPATH": str(ROOT)}
    env.pop("DATABASE_URL", None)
    out = subprocess.run([sys.executable, "-c", IMAGES_IN_A_WORKER, str(image)], cwd=ROOT, env=env, capture_output=True,
                         text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    figures = json.loads(out.stdout.strip().splitlines()[-1])
    assert figures["modules"] == ["playground.generations.jobs", "playground.providers.kie",
                                  "playground.providers.kvid"]  # loaded at start, not in the first job
    assert figures["end"] / figures["start"] <= 1.05, figures
    assert figures["busy"] > figures["end"]  # held for the next job while busy, given back once idle


def test_memory_goes_back_only_once_the_worker_is_idle():
    from playground.generations.warmup import IdleTrim

    now = [100.0]
    trim = IdleTrim(idle=1.0, clock=lambda: now[0])
    assert not trim.due(now[0])  # nothing ran yet: nothing to give back
    trim.busy = 1
    trim.last_end = 99.0
    assert not trim.due(now[0])  # a task is running
    trim.busy = 0
    trim.last_end = 99.5
    assert not trim.due(now[0])  # idle for 0.5 s only
    now[0] = 100.5
    assert trim.due(now[0])


def test_the_idle_trim_runs_after_the_last_task():
    from playground.generations.warmup import IdleTrim

    trim = IdleTrim(idle=0.0)
    trim.task_started()
    trim.task_started()
    trim.task_ended()
    assert not trim.wait_for_trim(1, timeout=0.5)  # the other task still runs: its buffers are in use
    assert trim.busy == 1
    trim.task_ended()
    assert trim.wait_for_trim(1, timeout=10)
    assert not trim.due(trim.clock())  # trimmed: nothing more to do until a task ends


def test_the_trim_waits_for_the_idle_time_on_its_clock():
    from playground.generations.warmup import IdleTrim

    now = [100.0]
    trim = IdleTrim(idle=60.0, clock=lambda: now[0])
    with trim.task():
        pass
    assert not trim.wait_for_trim(1, timeout=0.3)  # idle for 0 of 60 s
    now[0] = 159.0
    with trim._cv:
        trim._cv.notify_all()  # the thread looks at the clock again
    assert not trim.wait_for_trim(1, timeout=0.3)
    now[0] = 160.0
    with trim._cv:
        trim._cv.notify_all()
    assert trim.wait_for_trim(1, timeout=10)


def test_a_failed_trim_does_not_stop_later_ones(monkeypatch):
    from playground.generations import warmup

    calls = []

    def flaky():
        calls.append(1)
        if len(calls) == 1:
            raise OSError("no trim today")
        return True

    monkeypatch.setattr(warmup, "release_free_memory", flaky)
    trim = warmup.IdleTrim(idle=0.0)
    for n in (1, 2):
        with pytest.raises(ValueError):
            with trim.task():
                raise ValueError("the task failed")  # a failing task still counts as ended
        assert trim.wait_for_trim(n, timeout=10)
    assert len(calls) == 2 and trim.busy == 0
