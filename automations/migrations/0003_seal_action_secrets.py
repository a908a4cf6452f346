"""Move existing action secrets out of the clear, and give eventsite's kinds their own names.

- In every automation (and every action run not yet finished): a URL `call-webhook` becomes
  `call-webhook-url`, an address `send-notification` becomes `send-email`, and call-webhook
  header values are sealed (`eventsite.field_secrets`).
- In the log: the header values that `prefect.automation.*` events and automation audit events
  already carry are replaced by REDACTED, so the audit log does not keep them for a year.
"""

from django.db import migrations

from eventsite import field_secrets

LISTS = ("actions", "actions_on_trigger", "actions_on_resolve")
RENAMES = {"call-webhook": ("url", "call-webhook-url"), "send-notification": ("to", "send-email")}
AUTOMATION_EVENTS = (
    "prefect.automation.created",
    "prefect.automation.updated",
    "prefect.automation.deleted",
)
AUDIT_EVENTS = (
    "prefect-cloud.automation.created",
    "prefect-cloud.automation.updated",
    "prefect-cloud.automation.deleted",
)


def _sealed_action(action):
    if not isinstance(action, dict):
        return action
    action = dict(action)
    rename = RENAMES.get(action.get("type"))
    if rename and rename[0] in action:
        action["type"] = rename[1]
    if action.get("type") == "call-webhook-url" and isinstance(action.get("headers"), dict):
        action["headers"] = {
            k: field_secrets.seal(v) if isinstance(v, str) and v else v
            for k, v in action["headers"].items()
        }
    return action


def _redacted_action(action):
    if not isinstance(action, dict) or not isinstance(action.get("headers"), dict):
        return action
    headers = {
        k: v if field_secrets.is_sealed(v) or v in ("", None) else field_secrets.REDACTED
        for k, v in action["headers"].items()
    }
    return {**action, "headers": headers}


def _redacted_list(value):
    return [_redacted_action(a) for a in value] if isinstance(value, list) else value


def seal_stored_actions(apps, schema_editor):
    Automation = apps.get_model("automations", "Automation")
    for automation in Automation.objects.all().iterator():
        for name in LISTS:
            setattr(automation, name, [_sealed_action(a) for a in getattr(automation, name) or []])
        automation.save(update_fields=list(LISTS))
    ActionRun = apps.get_model("automations", "ActionRun")
    for run in ActionRun.objects.exclude(status__in=["succeeded", "failed"]).iterator():
        run.action = _sealed_action(run.action)
        run.kind = run.action.get("type", run.kind) if isinstance(run.action, dict) else run.kind
        run.save(update_fields=["action", "kind"])


def redact_logged_headers(apps, schema_editor):
    Event = apps.get_model("events", "Event")
    changed = []
    rows = Event.objects.filter(event__in=AUTOMATION_EVENTS + AUDIT_EVENTS).only("id", "payload")
    for row in rows.iterator(chunk_size=1000):
        payload = row.payload
        if not isinstance(payload, dict):
            continue
        new = dict(payload)
        for name in LISTS:
            if name in new:
                new[name] = _redacted_list(new[name])
        changes = new.get("changes")
        if isinstance(changes, dict):
            new["changes"] = {
                field: (
                    {side: _redacted_list(value) for side, value in diff.items()}
                    if field in LISTS and isinstance(diff, dict)
                    else diff
                )
                for field, diff in changes.items()
            }
        if new != payload:
            row.payload = new
            changed.append(row)
        if len(changed) >= 1000:
            Event.objects.bulk_update(changed, ["payload"])
            changed = []
    if changed:
        Event.objects.bulk_update(changed, ["payload"])


class Migration(migrations.Migration):
    dependencies = [
        ("automations", "0002_delivery_log"),
        ("events", "0005_webhook_verification_strict_grace"),
    ]

    operations = [
        migrations.RunPython(seal_stored_actions, migrations.RunPython.noop),
        migrations.RunPython(redact_logged_headers, migrations.RunPython.noop),
    ]
