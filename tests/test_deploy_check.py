"""manage.py check --deploy is clean with production values (RELIABILITY 10)."""

import os
import subprocess
import sys

from django.conf import settings


def run_check(extra_env):
    env = {k: v for k, v in os.environ.items() if k not in ("DEBUG", "HTTPS", "SECRET_KEY")}
    env.update(extra_env)
    return subprocess.run(
        [sys.executable, "manage.py", "check", "--deploy", "--fail-level", "WARNING"],
        cwd=settings.BASE_DIR, env=env, capture_output=True, text=True, timeout=120,
    )


def test_production_settings_pass_the_deploy_check(tmp_path):
    result = run_check({
        "HTTPS": "true", "BEHIND_PROXY": "true", "ALLOWED_HOSTS": "playground.example.com",
        "SECRET_KEY": "x" * 20 + "-production-secret-" + "y" * 30, "DATA_DIR": str(tmp_path),
    })
    assert result.returncode == 0, result.stdout + result.stderr


def test_debug_is_off_unless_asked_for(tmp_path):
    result = subprocess.run(
        [sys.executable, "manage.py", "shell", "-c", "from django.conf import settings; print(settings.DEBUG)"],
        cwd=settings.BASE_DIR, env={**{k: v for k, v in os.environ.items() if k != "DEBUG"}, "DATA_DIR": str(tmp_path)},
        capture_output=True, text=True, timeout=120,
    )
    assert result.stdout.strip().splitlines()[-1] == "False"


def test_without_https_the_check_names_what_is_missing(tmp_path):
    result = run_check({"SECRET_KEY": "z" * 60, "DATA_DIR": str(tmp_path)})
    assert result.returncode != 0
    assert "SECURE_SSL_REDIRECT" in result.stdout + result.stderr
