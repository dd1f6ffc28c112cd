"""A task worker's memory (issue 10: RSS after 1,000 jobs / at start <= 1.1):
it loads its job code at start, so the first job costs what the others do,
and serve runs it with db_worker's --max-tasks and starts it again when it
exits, so a worker whose memory grew is replaced by a fresh one (no heap
trimming by hand)."""

import json
import os
from pathlib import Path
import subprocess
import sys

import pytest

from playground.generations.management.commands.serve import worker_command
from playground.generations.warmup import is_task_worker

ROOT = Path(__file__).resolve().parents[2]

WARM_UP = """
import json, sys
import django
django.setup()
from playground.generations import warmup
warmup.warm_up()
PIPELINE = [f"playground.generations.pipeline.{m}" for m in ["callbacks", "calls", "create", "lease", "results", "steps", "sweep", "timing"]]
print(json.dumps(sorted(m for m in (*PIPELINE, "playground.providers.kie",
                                    "playground.providers.kvid") if m in sys.modules)))
"""

QUEUE_THREE = """
import django
django.setup()
from django.core.management import call_command
call_command("migrate", verbosity=0)
from playground.generations.tasks import sweep_generations
for _ in range(3):
    sweep_generations.enqueue()
"""

STATUSES = """
import json
import django
django.setup()
from django_tasks_db.models import DBTaskResult
print(json.dumps(sorted(DBTaskResult.objects.values_list("status", flat=True))))
"""


def own_env(tmp_path, **more):
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "playground.settings", "DATA_DIR": str(tmp_path),
           "PYTHONPATH": str(ROOT), **more}
    env.pop("DATABASE_URL", None)
    return env


def run(code, env):
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    return out.stdout.strip().splitlines()[-1] if out.stdout.strip() else ""


def test_only_task_worker_commands_warm_up():
    assert is_task_worker(["manage.py", "db_worker", "--queue-name", "default"])
    assert is_task_worker(["manage.py", "rqworker"])
    assert not is_task_worker(["manage.py", "migrate"])
    assert not is_task_worker(["manage.py"])


def test_a_worker_loads_its_job_code_at_start(tmp_path):
    assert json.loads(run(WARM_UP, own_env(tmp_path))) == [
        *(f"playground.generations.pipeline.{m}" for m in ["callbacks", "calls", "create", "lease", "results", "steps", "sweep", "timing"]),
        "playground.providers.kie", "playground.providers.kvid"]


def test_serve_runs_each_worker_with_max_tasks(settings):
    settings.TASK_WORKER_MAX_TASKS = 250
    command = worker_command(sys.executable, "w-1")
    assert command[command.index("--max-tasks") + 1] == "250"
    assert command[command.index("--worker-id") + 1] == "w-1"
    settings.TASK_WORKER_MAX_TASKS = 0
    assert "--max-tasks" not in worker_command(sys.executable, "w-1")


def test_a_worker_exits_after_its_max_tasks_and_leaves_the_rest_queued(tmp_path, settings):
    env = own_env(tmp_path, TASK_WORKER_MAX_TASKS="2", TASK_WORKER_INTERVAL="0.1")
    run(QUEUE_THREE, env)
    settings.TASK_WORKER_MAX_TASKS, settings.TASK_WORKER_INTERVAL = 2, 0.1
    worker = subprocess.run([*worker_command(sys.executable, "recycled-1"), "--no-startup-delay"], cwd=ROOT, env=env,
                            capture_output=True, text=True, timeout=120)
    assert worker.returncode == 0, worker.stderr[-2000:]  # serve starts it again (a clean exit: at once)
    assert json.loads(run(STATUSES, env)) == ["READY", "SUCCESSFUL", "SUCCESSFUL"]


IMAGES_ON_THREADS = """
import json, os
from concurrent.futures import ThreadPoolExecutor
import django
django.setup()
from PIL import Image
from playground.lib.images import check_image
from playground.sandbox.images import render

def rss_mib():
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) / 1024 for line in f if line.startswith("VmRSS"))

images = [render(f"a calm sea {i}", i, 1024, 1024) for i in range(8)]
check_image(images[0])
start = rss_mib()
with ThreadPoolExecutor(8) as pool:  # as a batch of steps checks its results
    for _ in range(25):
        list(pool.map(check_image, images))
print(json.dumps({"growth": rss_mib() / start, "block": Image.core.get_block_size()}))
"""


@pytest.mark.skipif(not os.path.exists("/proc/self/status"), reason="reads RSS from /proc")
def test_checking_many_images_on_threads_leaves_rss_where_it_was(tmp_path):
    """Pillow's pixels in small blocks (settings: PILLOW_BLOCK_SIZE): with
    its 16 MiB default a 1024 px image is one 4 MiB allocation, which the C
    allocator keeps once freed (1.66x after 200 images here)."""
    env = own_env(tmp_path)
    env.pop("PILLOW_BLOCK_SIZE", None)  # the settings' default, not this test process's
    out = json.loads(run(IMAGES_ON_THREADS, env))
    assert out["block"] == 64 * 1024
    assert out["growth"] < 1.1, out
    # An operator's own setting wins.
    out = json.loads(run(IMAGES_ON_THREADS, own_env(tmp_path, PILLOW_BLOCK_SIZE="16M")))
    assert out["block"] == 16 * 1024 * 1024
