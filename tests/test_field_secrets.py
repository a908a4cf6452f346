"""Secrets at rest: sealed with the field key, rotated with an old key and `reseal_secrets`."""

from __future__ import annotations

import io
import uuid

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from automations.actions import parse_action
from automations.engine import Engine
from automations.models import ActionRun, Automation
from automations.validation import validate_definition
from events.models import Webhook
from eventsite import field_secrets
from tests.automations.conftest import event, store

pytestmark = pytest.mark.django_db

TRIGGER = {"type": "event", "posture": "Reactive", "expect": ["acme.x"]}


def test_a_sealed_value_opens_only_with_its_key(settings):
    settings.EVENTSITE_FIELD_KEY = "key-one"
    sealed = field_secrets.seal("hunter2")
    assert sealed.startswith("sealed:v1:") and "hunter2" not in sealed
    assert field_secrets.reveal(sealed) == "hunter2"
    assert field_secrets.seal(sealed) == sealed  # not sealed twice

    settings.EVENTSITE_FIELD_KEY = "key-two"
    with pytest.raises(field_secrets.SecretUnreadable, match="EVENTSITE_FIELD_KEY_OLD"):
        field_secrets.reveal(sealed)
    settings.EVENTSITE_FIELD_KEY_OLD = ["key-one"]
    assert field_secrets.reveal(sealed) == "hunter2"


def test_fingerprints_tell_equal_values_apart_from_different_ones_without_the_value():
    a1, a2 = field_secrets.seal("same"), field_secrets.seal("same")
    assert a1 != a2  # Fernet tokens differ every time…
    assert field_secrets.fingerprint(a1) == field_secrets.fingerprint(a2)  # …fingerprints do not
    assert field_secrets.fingerprint(a1) != field_secrets.fingerprint(field_secrets.seal("other"))
    assert field_secrets.fingerprinted({"h": [a1]}) == {
        "h": [f"[secret {field_secrets.fingerprint('same')}]"]
    }
    assert field_secrets.redact({"h": [a1], "n": 1}) == {"h": [field_secrets.REDACTED], "n": 1}


def stored_automation() -> Automation:
    definition = validate_definition(
        {
            "name": "a",
            "trigger": TRIGGER,
            "actions": [{"type": "notify-slack", "webhook_url": "https://hooks.slack.com/s/k1"}],
        },
        automation_id=uuid.uuid4(),
    )
    return Automation.objects.create(**definition.fields())


def test_rotation_reseals_every_secret_under_the_new_key(settings):
    settings.EVENTSITE_FIELD_KEY = "old-key"
    automation = stored_automation()
    webhook = Webhook.objects.create(name="w", template="{}", verification_secret="wh-key")
    old_token = automation.actions[0]["webhook_url"]

    settings.EVENTSITE_FIELD_KEY = "new-key"
    settings.EVENTSITE_FIELD_KEY_OLD = ["old-key"]
    out = io.StringIO()
    call_command("reseal_secrets", stdout=out)
    assert "1 automations" in out.getvalue() and "1 webhooks" in out.getvalue()

    settings.EVENTSITE_FIELD_KEY_OLD = []  # the old key is gone: everything still opens
    automation.refresh_from_db()
    assert automation.actions[0]["webhook_url"] != old_token
    assert parse_action(automation.actions[0]).webhook_url == "https://hooks.slack.com/s/k1"
    assert Webhook.objects.get(pk=webhook.pk).verification_secret == "wh-key"


def test_reseal_refuses_and_changes_nothing_without_the_old_key(settings):
    settings.EVENTSITE_FIELD_KEY = "old-key"
    automation = stored_automation()
    before = automation.actions

    settings.EVENTSITE_FIELD_KEY = "new-key"
    with pytest.raises(CommandError, match="EVENTSITE_FIELD_KEY_OLD"):
        call_command("reseal_secrets", stdout=io.StringIO())
    automation.refresh_from_db()
    assert automation.actions == before


def test_an_action_whose_secret_cannot_be_opened_fails_with_a_clear_reason(settings):
    settings.EVENTSITE_FIELD_KEY = "old-key"
    stored_automation()
    settings.EVENTSITE_FIELD_KEY = "lost-key"
    engine = Engine()
    engine.load()
    store(event("acme.x"))
    engine.step()
    engine.run_actions()
    run = ActionRun.objects.get()
    assert run.status == ActionRun.Status.FAILED
    assert "cannot be decrypted with the configured field key" in run.last_error
