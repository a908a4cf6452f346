from django.conf import settings
from django.core.management.base import BaseCommand
from django.utils import timezone

from events.retention import prune


class Command(BaseCommand):
    help = "Delete events older than EVENTSITE_EVENT_RETENTION, in batches, showing progress."

    def add_arguments(self, parser):
        parser.add_argument("--batch-size", type=int, default=5000)

    def handle(self, *args, batch_size: int, **options):
        cutoff = timezone.now() - settings.EVENTSITE_EVENT_RETENTION
        self.stdout.write(f"Deleting events that occurred before {cutoff.isoformat()}")
        total = prune(
            before=cutoff,
            batch_size=batch_size,
            progress=lambda n: self.stdout.write(f"  {n} deleted"),
        )
        self.stdout.write(self.style.SUCCESS(f"Done: {total} events deleted."))
