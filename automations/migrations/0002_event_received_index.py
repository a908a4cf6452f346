"""An index on the event log by (received, id): the engine's durable cursor reads in that order.

It lives here, next to the only reader that needs it, as plain SQL so that the `events` app's
migrations (and their numbering) stay untouched. `IF NOT EXISTS` keeps it harmless if the
`events` app ever declares the same index itself.
"""

from django.db import migrations

CREATE = "CREATE INDEX IF NOT EXISTS event_received_id ON events_event (received, id)"
DROP = "DROP INDEX IF EXISTS event_received_id"


class Migration(migrations.Migration):
    dependencies = [
        ("automations", "0001_initial"),
        ("events", "0001_initial"),
    ]

    operations = [migrations.RunSQL(CREATE, DROP)]
