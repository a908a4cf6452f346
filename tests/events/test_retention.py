from datetime import timedelta

import pytest
from django.core.management import call_command

from events.ingest import ingest
from events.models import Event, EventResource
from events.retention import prune
from tests.factories import event_data, related

pytestmark = pytest.mark.django_db


def test_prune_deletes_events_older_than_the_retention_with_their_resource_rows(settings):
    settings.EVENTSITE_EVENT_RETENTION = timedelta(days=7)
    old = [event_data(ago=timedelta(days=8), related=[related("x", "tag")]) for _ in range(5)]
    fresh = event_data(ago=timedelta(days=6), related=[related("x", "tag")])
    ingest([*old, fresh], source="test")
    batches = []

    deleted = prune(batch_size=2, progress=batches.append)

    assert deleted == 5
    assert batches == [2, 4, 5]
    assert list(Event.objects.values_list("id", flat=True)) == [Event.objects.get().id]
    assert str(Event.objects.get().id) == fresh["id"]
    assert EventResource.objects.count() == 2


def test_prune_events_command_reports_progress(settings, capsys):
    # Days, not hours: on PostgreSQL an event goes with its whole day (`events.partitions`).
    settings.EVENTSITE_EVENT_RETENTION = timedelta(days=1)
    ingest([event_data(ago=timedelta(days=3)) for _ in range(3)], source="test")

    call_command("prune_events", "--batch-size", "2")

    out = capsys.readouterr().out
    assert "2 deleted" in out
    assert "Done: 3 events deleted." in out
    assert Event.objects.count() == 0
