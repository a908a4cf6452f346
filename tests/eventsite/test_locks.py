"""Deployment-wide locks on the backend under test (PostgreSQL advisory locks, SQLite flock).

Two `DeploymentLock`s in one process stand for two processes: each PostgreSQL lock holds its own
connection (advisory locks are per session), each SQLite lock its own open file (flock locks are
per open file).
"""

from __future__ import annotations

import threading

import pytest
from django.db import connection

from eventsite.locks import DeploymentLock, lock_key
from tests.eventsite.helpers import advisory_lock_holders

pytestmark = pytest.mark.django_db(transaction=True)


def test_a_deployment_lock_has_one_holder_until_released():
    first, second = DeploymentLock("deploy-test-one"), DeploymentLock("deploy-test-one")
    try:
        assert first.acquire()
        assert first.held()
        assert not second.acquire()
        assert not second.held()
        first.release()
        assert second.acquire()
        assert not first.acquire()
    finally:
        first.release()
        second.release()


def test_locks_of_different_names_do_not_exclude_each_other():
    with DeploymentLock("deploy-test-a"), DeploymentLock("deploy-test-b") as b:
        assert b.held()


def test_waiting_for_a_lock_returns_once_the_holder_releases_it():
    holder = DeploymentLock("deploy-test-wait")
    assert holder.acquire()
    got = threading.Event()

    def wait_for_it():
        with DeploymentLock("deploy-test-wait"):
            got.set()

    waiter = threading.Thread(target=wait_for_it)
    waiter.start()
    try:
        assert not got.wait(0.3)  # still held: the waiter is blocked
        holder.release()
        assert got.wait(10)
    finally:
        holder.release()
        waiter.join(10)


def test_lock_keys_are_stable_64_bit_integers():
    assert lock_key("service:retention") == lock_key("service:retention")
    assert lock_key("service:retention") != lock_key("setup")
    assert -(2**63) <= lock_key("setup") < 2**63


@pytest.mark.skipif(connection.vendor != "postgresql", reason="advisory locks are PostgreSQL's")
def test_a_postgresql_holder_whose_connection_dies_loses_the_lock_to_another():
    holder, other = DeploymentLock("deploy-test-crash"), DeploymentLock("deploy-test-crash")
    try:
        assert holder.acquire()
        with connection.cursor() as cursor:
            (pid,) = advisory_lock_holders(cursor, "deploy-test-crash")
            cursor.execute("SELECT pg_terminate_backend(%s)", [pid])
        assert not holder.held()
        assert other.acquire()
    finally:
        holder.release()
        other.release()
