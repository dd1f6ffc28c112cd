"""WSGI entry point of the provider sandboxes: gunicorn playground.sandbox.wsgi."""

import os

import django

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "playground.settings")
django.setup()

from .app import application_from_env  # noqa: E402

application = application_from_env()
