"""First-run setup of a deployment: migrations and the first admin, race-free.

Any number of processes may start at once on a fresh database (several web processes under
systemd, a rolling restart). Each one takes the deployment-wide "setup" lock
(`eventsite.locks`) and, holding it, migrates (when asked) and creates the first admin and API
token if there is no user yet. The first process does the work; the others wait on the lock,
then find nothing left to do.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass

from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.db import DEFAULT_DB_ALIAS, connections, transaction
from django.db.migrations.executor import MigrationExecutor

from events.models import ApiToken
from eventsite.locks import DeploymentLock

SETUP_LOCK = "setup"


class NotMigrated(Exception):
    """The database lacks migrations and this process was not asked to apply them."""


@dataclass(frozen=True)
class FirstAdmin:
    username: str
    password: str
    token: str


def unapplied_migrations() -> int:
    connection = connections[DEFAULT_DB_ALIAS]
    executor = MigrationExecutor(connection)
    return len(executor.migration_plan(executor.loader.graph.leaf_nodes()))


def prepare(*, migrate: bool, first_admin: bool) -> FirstAdmin | None:
    """Migrate (if `migrate`) and create the first admin (if `first_admin` and none exists).

    Returns the new admin's credentials when this process created them, else None. Raises
    `NotMigrated` when migrations are missing and `migrate` is false.
    """
    with DeploymentLock(SETUP_LOCK):
        if migrate:
            call_command("migrate", interactive=False, verbosity=0, skip_checks=True)
        elif first_admin and (missing := unapplied_migrations()):
            raise NotMigrated(f"{missing} database migrations are not applied")
        if first_admin:
            return _create_first_admin()
    return None


def _create_first_admin() -> FirstAdmin | None:
    User = get_user_model()
    with transaction.atomic():
        if User.objects.exists():
            return None
        password = secrets.token_urlsafe(12)
        user = User.objects.create_superuser("admin", "", password)
        _, token = ApiToken.issue(user, name="first-run")
    return FirstAdmin(username="admin", password=password, token=token)
