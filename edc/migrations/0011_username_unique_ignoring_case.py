import django.db.models.functions.text
from django.db import migrations, models
from django.db.models import Count
from django.db.models.functions import Lower

import edc.models


def refuse_usernames_differing_only_in_case(apps, schema_editor):
    """The unique index cannot be built while two accounts share a username up to letter case;
    say which, rather than fail on the index with the database's message. Accounts are never
    deleted or renamed by a migration: an administrator decides (deactivate one, and give the
    person a single account) and migrates again."""
    User = apps.get_model("edc", "User")
    clashes = (User.objects.using(schema_editor.connection.alias)
               .values(folded=Lower("username")).annotate(n=Count("pk")).filter(n__gt=1)
               .values_list("folded", flat=True))
    if clashes:
        names = []
        for folded in sorted(clashes):
            names.append(" = ".join(sorted(
                User.objects.using(schema_editor.connection.alias)
                .annotate(folded=Lower("username")).filter(folded=folded)
                .values_list("username", flat=True))))
        raise RuntimeError(
            "Usernames must be unique whatever their letter case, and these accounts differ "
            "only in case: " + "; ".join(names) + ". Rename all but one of each (Django admin "
            "cannot; use the database shell with care, or ask the developers), then migrate "
            "again."
        )


class Migration(migrations.Migration):

    dependencies = [
        ('auth', '0012_alter_user_first_name_max_length'),
        ('edc', '0010_history_source'),
    ]

    operations = [
        migrations.AlterModelManagers(
            name='user',
            managers=[
                ('objects', edc.models.AccountManager()),
            ],
        ),
        migrations.RunPython(refuse_usernames_differing_only_in_case, migrations.RunPython.noop),
        migrations.AddConstraint(
            model_name='user',
            constraint=models.UniqueConstraint(django.db.models.functions.text.Lower('username'), name='user_username_unique_ignoring_case', violation_error_message='A user with that username already exists (usernames ignore letter case).'),
        ),
    ]
