from django.apps import AppConfig


class LedgerConfig(AppConfig):
    name = "playground.ledger"
    label = "ledger"
