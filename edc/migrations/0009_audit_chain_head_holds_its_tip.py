"""The chain head holds its chain's last sequence and hash, so that appending a link reads the
head and the row in one statement and the link's insert advances the head (edc.audit).

Existing heads are brought up to date from their table's last link. The head's append-only
trigger is dropped first (it refused every UPDATE); ``post_migrate`` (``edc.audit.audit_install``)
installs its replacement, which lets a head advance link by link and nothing else, and the
link table's trigger that advances the head."""

from django.db import migrations, models

HEAD = "edc_auditchainhead"
LINK = "edc_auditchainlink"


def drop_head_triggers(apps, schema_editor):
    """Forward: the old append-only trigger of the head. Backward: the head's guard and the
    link table's advancing trigger, which name the columns this migration adds."""
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(f'DROP TRIGGER IF EXISTS edc_append_only ON "{HEAD}"')
        schema_editor.execute(f'DROP TRIGGER IF EXISTS edc_chain_advance ON "{LINK}"')
    else:
        for name in (f"edc_append_only_update_{HEAD}", f"edc_append_only_delete_{HEAD}",
                     "edc_chain_advance"):
            schema_editor.execute(f'DROP TRIGGER IF EXISTS "{name}"')


def heads_from_last_links(apps, schema_editor):
    """Every table with links gets a head (there should be one already), and every head the
    sequence and hash of its table's last link."""
    schema_editor.execute(
        f'INSERT INTO "{HEAD}" ("table", created_at, last_sequence, last_hash) '
        f'SELECT DISTINCT link."table", CURRENT_TIMESTAMP, 0, %s FROM "{LINK}" link '
        f'WHERE NOT EXISTS (SELECT 1 FROM "{HEAD}" head WHERE head."table" = link."table")',
        ["0" * 64],
    )
    last = (f'FROM "{LINK}" link WHERE link."table" = "{HEAD}"."table" '
            f'ORDER BY link.sequence DESC LIMIT 1')
    schema_editor.execute(
        f'UPDATE "{HEAD}" SET last_sequence = (SELECT link.sequence {last}), '
        f'last_hash = (SELECT link.row_hash {last}) '
        f'WHERE EXISTS (SELECT 1 FROM "{LINK}" link WHERE link."table" = "{HEAD}"."table")'
    )


class Migration(migrations.Migration):

    dependencies = [
        ('edc', '0008_password_holder_and_administrator_rights'),
    ]

    operations = [
        migrations.RunPython(drop_head_triggers, drop_head_triggers),
        migrations.AddField(
            model_name='auditchainhead',
            name='last_hash',
            field=models.CharField(default='0000000000000000000000000000000000000000000000000000000000000000', max_length=64, verbose_name='last hash'),
        ),
        migrations.AddField(
            model_name='auditchainhead',
            name='last_sequence',
            field=models.PositiveBigIntegerField(default=0, verbose_name='last sequence'),
        ),
        migrations.RunPython(heads_from_last_links, migrations.RunPython.noop),
    ]
