"""Every charge of the old one-row ledger becomes a reserve and a capture
(amount, basis and "paid, no image" kept), so history survives the move."""

from django.db import migrations

KNOWN_UNITS = {"kie": "kie_credit", "kvid": "kvid_credit", "kwiki": "kwiki_credit", "kawai": "USD"}


def unit_of(provider):
    if provider in KNOWN_UNITS:
        return KNOWN_UNITS[provider]
    try:
        from playground.providers import registry

        return registry.get_or_removed(provider).unit.code
    except Exception:
        return f"{provider}_credit"


def forwards(apps, schema_editor):
    Charge = apps.get_model("ledger", "Charge")
    Entry = apps.get_model("ledger", "Entry")
    rows = []
    for c in Charge.objects.select_related("generation", "user").iterator():
        common = dict(team_id=c.team_id, user_id=c.user_id, username=c.user.username if c.user_id else "",
                      generation_id=c.generation_id, generation_uuid=c.generation.uuid, provider=c.provider,
                      model=c.model, unit=unit_of(c.provider))
        rows.append(Entry(kind="reserve", amount=c.generation.cost_estimate, created_at=c.generation.created_at,
                          **common))
        reported = c.credits if c.basis == "reported" else None
        rows.append(Entry(kind="capture", amount=c.credits, estimate=c.generation.cost_estimate, reported=reported,
                          basis=c.basis, no_image=c.kind == "no_image", created_at=c.created_at, **common))
    Entry.objects.bulk_create(rows, batch_size=500)


class Migration(migrations.Migration):
    dependencies = [("ledger", "0002_entries_budgets_prices")]
    operations = [migrations.RunPython(forwards, migrations.RunPython.noop)]
