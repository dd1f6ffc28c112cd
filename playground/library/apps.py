from django.apps import AppConfig


class LibraryConfig(AppConfig):
    name = "playground.library"
    label = "library"
