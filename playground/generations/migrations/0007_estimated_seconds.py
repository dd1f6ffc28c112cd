from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ('generations', '0006_api_token'),
    ]

    operations = [
        migrations.AddField(
            model_name='generation',
            name='estimated_seconds',
            field=models.FloatField(blank=True, null=True),
        ),
    ]
