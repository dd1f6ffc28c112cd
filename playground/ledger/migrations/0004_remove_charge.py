from django.db import migrations


class Migration(migrations.Migration):
    dependencies = [("ledger", "0003_charges_to_entries")]
    operations = [migrations.DeleteModel(name="Charge")]
