"""`manage.py reseal_secrets`: re-encrypt every stored secret under the current field key.

Key rotation (see `eventsite.field_secrets`): set the new `EVENTSITE_FIELD_KEY`, put the previous
key(s) in `EVENTSITE_FIELD_KEY_OLD`, run this, then remove the old key. Safe to run again; it
changes nothing else and records no audit event (the values do not change, only their sealing).
"""

from __future__ import annotations

from django.core.management.base import BaseCommand, CommandError
from django.db import transaction

from automations.models import ActionRun, Automation
from events.models import Webhook
from eventsite import field_secrets

LISTS = ("actions", "actions_on_trigger", "actions_on_resolve")


class Command(BaseCommand):
    help = "Re-encrypt every stored secret under the current EVENTSITE_FIELD_KEY."

    def handle(self, *args, **options):
        counts = {"automations": 0, "action runs": 0, "webhooks": 0}
        try:
            with transaction.atomic():
                for automation in Automation.objects.select_for_update():
                    values = {name: getattr(automation, name) for name in LISTS}
                    if field_secrets.has_sealed(values):
                        for name, value in values.items():
                            setattr(automation, name, field_secrets.resealed(value))
                        automation.save(update_fields=list(LISTS))
                        counts["automations"] += 1
                for run in ActionRun.objects.exclude(
                    status__in=[ActionRun.Status.SUCCEEDED, ActionRun.Status.FAILED]
                ):
                    if field_secrets.has_sealed(run.action):
                        run.action = field_secrets.resealed(run.action)
                        run.save(update_fields=["action"])
                        counts["action runs"] += 1
                for webhook in Webhook.objects.exclude(verification_secret=""):
                    if field_secrets.is_sealed(webhook.verification_secret):
                        raise field_secrets.SecretUnreadable(
                            f"the verification key of webhook {webhook.id} cannot be decrypted"
                        )
                    # Saving seals the clear value again, under the current key.
                    webhook.save(update_fields=["verification_secret"])
                    counts["webhooks"] += 1
        except field_secrets.SecretUnreadable as exc:
            raise CommandError(
                f"{exc}. Put the key it was sealed with in EVENTSITE_FIELD_KEY_OLD and run again; "
                "nothing was changed."
            ) from None
        summary = ", ".join(f"{n} {what}" for what, n in counts.items())
        self.stdout.write(f"Re-sealed the secrets of {summary}.")
