import asyncio

import httpx
import pytest

from events.models import ApiToken, Event
from tests.factories import event_data

pytestmark = pytest.mark.live


def test_serve_stores_posted_events_and_answers_queries_end_to_end(server, user):
    _, secret = ApiToken.issue(user, name="live")
    headers = {"Authorization": f"Bearer {secret}"}
    events = [event_data(resource_id=f"acme.order.{i}") for i in range(3)]

    response = httpx.post(f"{server.url}/api/events", json=events, headers=headers)

    assert response.status_code == 204
    # Issuing the token stored an audit event too; count the posted ones.
    assert Event.objects.filter(event="acme.order.created").count() == 3
    acme = {"event": {"prefix": ["acme."]}}
    found = httpx.post(
        f"{server.url}/api/events/filter", json={"limit": 2, "filter": acme}, headers=headers
    ).json()
    assert found["total"] == 3
    assert len(found["events"]) == 2
    assert found["next_page"].startswith(f"{server.url}/api/events/filter/next?page-token=")
    rest = httpx.get(found["next_page"], headers=headers).json()
    assert {e["id"] for e in found["events"] + rest["events"]} == {e["id"] for e in events}
    assert rest["next_page"] is None


def test_serve_rejects_requests_without_a_token(server):
    response = httpx.post(f"{server.url}/api/events", json=[])

    assert response.status_code == 401
    assert "detail" in response.json()


def test_health_and_version_answer_without_a_token(server):
    assert httpx.get(f"{server.url}/api/health").json() is True
    assert httpx.get(f"{server.url}/api/admin/version").json() == "3.9.1"


def test_the_first_start_creates_an_admin_and_a_token_printed_once(tmp_path):
    import os
    import subprocess
    import sys

    from tests.conftest import ROOT, free_port

    env = {**os.environ, "EVENTSITE_DATA_DIR": str(tmp_path)}
    env.pop("EVENTSITE_DATABASE_URL", None)
    subprocess.run([sys.executable, "manage.py", "migrate", "-v0"], cwd=ROOT, env=env, check=True)
    port = free_port()

    def first_lines() -> str:
        process = subprocess.Popen(
            [sys.executable, "manage.py", "serve", "--port", str(port)],
            cwd=ROOT,
            env=env,
            stdout=subprocess.PIPE,
            text=True,
        )
        lines = []
        for line in process.stdout:
            lines.append(line)
            if "serving on" in line:
                break
        process.terminate()
        process.wait(10)
        return "".join(lines)

    first = first_lines()
    token = first.split("API token: ")[1].split()[0]
    assert "username: admin" in first
    assert (
        f"PREFECT_API_URL=http://127.0.0.1:{port}/api PREFECT_API_AUTH_STRING=eventsite:{token}"
        in first
    )
    assert "password: " in first
    assert "First run" not in first_lines()
    # The printed token works against that server's database.
    result = subprocess.run(
        [
            sys.executable,
            "manage.py",
            "shell",
            "-c",
            f"from events.models import ApiToken; print(ApiToken.authenticate({token!r}).user)",
        ],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
    )
    assert result.stdout.strip().splitlines()[-1] == "admin"


def test_serve_answers_many_requests_at_once_each_with_its_own_result(server, user):
    """More requests at once than the handler keeps idle threads for (`request_threads`): each
    gets a thread, writes land, reads see their own filter, none waits for another's end."""
    _, secret = ApiToken.issue(user, name="burst")
    headers = {"Authorization": f"Bearer {secret}"}
    batches = [[event_data(resource_id=f"acme.burst.{n}.{i}") for i in range(3)] for n in range(20)]

    async def burst():
        async with httpx.AsyncClient(base_url=server.url, headers=headers, timeout=30) as client:
            writes = [client.post("/api/events", json=batch) for batch in batches]
            health = [client.get("/api/health") for _ in range(20)]
            return await asyncio.gather(*writes, *health)

    responses = asyncio.run(burst())

    assert [r.status_code for r in responses] == [204] * 20 + [200] * 20
    assert Event.objects.filter(resource_id__startswith="acme.burst.").count() == 60
    for n in (0, 19):
        found = httpx.post(
            f"{server.url}/api/events/filter",
            json={"filter": {"resource": {"id_prefix": [f"acme.burst.{n}."]}}},
            headers=headers,
        ).json()
        assert {e["id"] for e in found["events"]} == {e["id"] for e in batches[n]}
