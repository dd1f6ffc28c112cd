from django.apps import AppConfig


class CoreConfig(AppConfig):
    """Only the migration history of the tables created before the split
    into apps (accounts, generations, ledger): their models moved, the tables
    kept their names. See docs/architecture.md."""

    name = "playground.core"
    label = "core"
    verbose_name = "Migration history (before the split into apps)"
