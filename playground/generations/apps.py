from django.apps import AppConfig


class GenerationsConfig(AppConfig):
    name = "playground.generations"
    label = "generations"

    def ready(self):
        from .warmup import is_task_worker, warm_up

        if is_task_worker():
            warm_up()
