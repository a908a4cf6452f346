"""The ASGI handler that runs a request's synchronous part in one hop on a pooled thread.

Driven in process, as the server drives it (the ASGI messages, a disconnect), through the real
middleware chain; the views below record the thread each step ran on.
"""

from __future__ import annotations

import asyncio
import threading

import pytest
from asgiref.sync import sync_to_async
from django.contrib.auth.models import User
from django.core import signals
from django.db import DEFAULT_DB_ALIAS, connection, connections, transaction
from django.http import HttpResponse, JsonResponse, StreamingHttpResponse
from django.urls import path

from eventsite import asgi
from eventsite.request_threads import OneHopASGIHandler, RequestThreads

pytestmark = [pytest.mark.urls(__name__), pytest.mark.django_db(transaction=True)]

seen: dict[str, list] = {}
release = threading.Event()
view_started = threading.Event()


def record(step: str, value=None) -> None:
    seen.setdefault(step, []).append(threading.get_ident() if value is None else value)


def where(request):
    record("view")
    return JsonResponse({"thread": threading.get_ident()})


def blocked(request):
    view_started.set()
    release.wait(10)
    record("blocked view")
    return HttpResponse("late")


def streamed(request):
    record("view")

    async def body():
        try:
            for n in range(3):
                # A thread-sensitive call, as a streamed body's database reads are.
                await sync_to_async(record)("chunk")
                yield f"{n}\n"
                if request.GET.get("wait"):
                    await asyncio.sleep(10)
        finally:
            record("generator closed")

    return StreamingHttpResponse(body(), content_type="text/plain")


def blocked_stream(request):
    view_started.set()
    release.wait(10)

    async def body():
        yield "late"

    return StreamingHttpResponse(body())


loop_of_test: list[asyncio.AbstractEventLoop] = []
late: list = []


def hands_work_to_the_loop(request):
    """As the live tail's waker does: work scheduled on the loop from the request's thread,
    which runs in a copy of the request's context and here outlives the request."""

    async def later():
        await asyncio.sleep(0.05)
        late.append(await sync_to_async(threading.get_ident)())

    loop_of_test[0].call_soon_threadsafe(lambda: late.append(asyncio.ensure_future(later())))
    record("view")
    return HttpResponse("ok")


def database(request):
    """Which connection served: the raw connection's id, and what it reads."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT COUNT(*) FROM auth_user")
        users = cursor.fetchone()[0]
    if request.GET.get("leave") == "transaction":
        transaction.set_autocommit(False)  # a view that leaves a transaction open
    record("raw connection", connection.connection)  # kept alive: no id reused
    late_work = request.GET.get("late") == "work"
    if late_work:

        def later():
            late.append(connections[DEFAULT_DB_ALIAS])

        loop_of_test[0].call_soon_threadsafe(later)
    record("wrapper", connections[DEFAULT_DB_ALIAS])
    return JsonResponse({"users": users})


urlpatterns = [
    path("database", database),
    path("hands-work-to-the-loop", hands_work_to_the_loop),
    path("where", where),
    path("blocked", blocked),
    path("streamed", streamed),
    path("blocked-stream", blocked_stream),
]


@pytest.fixture(autouse=True)
def steps():
    seen.clear()
    release.clear()
    view_started.clear()

    def started(**kwargs):
        record("request_started")

    def finished(**kwargs):
        record("request_finished")

    signals.request_started.connect(started)
    signals.request_finished.connect(finished)
    yield seen
    release.set()
    signals.request_started.disconnect(started)
    signals.request_finished.disconnect(finished)


class Client:
    """One request to the handler: its messages, and a way to hang up."""

    def __init__(self, handler, url: str, *, body_done: bool = True) -> None:
        route, _, query = url.partition("?")
        scope = {
            "type": "http",
            "asgi": {"version": "3.0"},
            "http_version": "1.1",
            "method": "GET",
            "scheme": "http",
            "path": route,
            "raw_path": route.encode(),
            "query_string": query.encode(),
            "root_path": "",
            "headers": [(b"host", b"testserver")],
            "client": ("127.0.0.1", 1),
            "server": ("testserver", 80),
        }
        self.incoming: asyncio.Queue = asyncio.Queue()
        self.incoming.put_nowait({"type": "http.request", "body": b"", "more_body": not body_done})
        self.sent: list[dict] = []
        self.body_started = asyncio.Event()
        self.task = asyncio.create_task(handler(scope, self.incoming.get, self.send))

    async def send(self, message: dict) -> None:
        self.sent.append(message)
        if message["type"] == "http.response.body" and message.get("body"):
            self.body_started.set()

    def hang_up(self) -> None:
        self.incoming.put_nowait({"type": "http.disconnect"})

    async def response(self) -> tuple[int, bytes]:
        await asyncio.wait_for(self.task, 10)
        status = self.sent[0]["status"]
        return status, b"".join(m.get("body", b"") for m in self.sent[1:])


async def test_a_request_crosses_to_one_thread_for_its_signals_middleware_view_and_close():
    handler = OneHopASGIHandler()
    status, body = await Client(handler, "/where").response()
    assert status == 200
    loop_thread = threading.get_ident()
    view_thread = seen["view"][0]
    assert view_thread != loop_thread
    assert seen["request_started"] == [view_thread]
    assert seen["request_finished"] == [view_thread]
    assert body == f'{{"thread": {view_thread}}}'.encode()


async def test_the_next_request_reuses_the_thread_instead_of_starting_one():
    handler = OneHopASGIHandler()
    for _ in range(3):
        assert (await Client(handler, "/where").response())[0] == 200
    assert len(set(seen["view"])) == 1


async def test_a_client_still_sending_its_body_holds_no_thread():
    handler = OneHopASGIHandler(threads=RequestThreads())
    assert (await Client(handler, "/where").response())[0] == 200
    stalled = Client(handler, "/where", body_done=False)
    await asyncio.sleep(0.05)
    assert (await Client(handler, "/where").response())[0] == 200
    # The next request took the one idle thread; the stalled one has none yet.
    assert len(set(seen["view"])) == 1
    stalled.hang_up()
    await asyncio.wait_for(stalled.task, 5)
    assert stalled.sent == []


async def test_requests_at_the_same_time_get_threads_of_their_own():
    handler = OneHopASGIHandler()
    slow = Client(handler, "/blocked")
    await asyncio.to_thread(view_started.wait, 5)
    # The first request's view holds its thread; the second one is answered meanwhile.
    assert (await Client(handler, "/where").response())[0] == 200
    assert not slow.task.done()
    release.set()
    assert await slow.response() == (200, b"late")
    assert seen["blocked view"][0] != seen["view"][0]


async def test_a_streamed_bodys_thread_sensitive_reads_run_on_the_views_thread():
    handler = OneHopASGIHandler()
    status, body = await Client(handler, "/streamed").response()
    assert (status, body) == (200, b"0\n1\n2\n")
    view_thread = seen["view"][0]
    assert seen["chunk"] == [view_thread] * 3
    # Closed once, after the last chunk was sent, on the same thread.
    assert seen["request_finished"] == [view_thread]


async def test_a_hang_up_during_a_streamed_body_stops_it_and_closes_the_response():
    handler = OneHopASGIHandler()
    client = Client(handler, "/streamed?wait=1")
    await asyncio.wait_for(client.body_started.wait(), 5)
    client.hang_up()
    await asyncio.wait_for(client.task, 5)
    assert seen["chunk"] == [seen["view"][0]]
    assert len(seen["generator closed"]) == 1
    assert seen["request_finished"] == [seen["view"][0]]


@pytest.mark.parametrize("url", ["/blocked", "/blocked-stream"])
async def test_a_request_cancelled_while_its_view_runs_is_closed_and_holds_up_no_other(url):
    threads = RequestThreads()
    handler = OneHopASGIHandler(threads=threads)
    client = Client(handler, url)
    await asyncio.to_thread(view_started.wait, 5)
    client.hang_up()
    await asyncio.sleep(0.05)
    # Another request is not queued behind the view still running on the hung-up one's thread.
    assert (await Client(handler, "/where").response())[0] == 200
    assert "request_finished" in seen and len(seen["request_finished"]) == 1
    release.set()
    await asyncio.wait_for(client.task, 5)
    assert client.sent == []
    # The cancelled response was closed too (plain: by its thread; streamed: after it).
    assert len(seen["request_finished"]) == 2
    assert seen["request_finished"][1] == seen["request_started"][0]
    assert seen["view"][0] != seen["request_started"][0]


async def test_work_the_request_hands_to_the_loop_may_call_sync_code_after_the_request():
    loop_of_test[:] = [asyncio.get_running_loop()]
    late.clear()
    handler = OneHopASGIHandler()
    assert await Client(handler, "/hands-work-to-the-loop").response() == (200, b"ok")
    task = late[0]
    await asyncio.wait_for(task, 5)
    assert task.exception() is None
    # It ran, on a thread of its own: the request's went back to the pool.
    assert len(late) == 2 and late[1] not in seen["view"]


async def test_the_server_serves_django_through_this_handler_with_the_projects_chain():
    assert isinstance(asgi.django_asgi_app, OneHopASGIHandler)
    # Loaded in sync mode: a synchronous chain, no async adapters between the middleware.
    assert not asyncio.iscoroutinefunction(asgi.django_asgi_app._middleware_chain)


sqlite_only = pytest.mark.skipif(
    "sqlite" not in connections.settings[DEFAULT_DB_ALIAS]["ENGINE"],
    reason="PostgreSQL's connections come from its pool; only SQLite's are kept by the threads",
)


@sqlite_only
async def test_a_request_thread_keeps_its_sqlite_connection_for_the_next_request():
    """A request's new connection (open, Django's functions, an empty page cache) cost 1-2.5 ms
    of CPU at 1M: a request thread keeps its connection, and the next request reads through it,
    seeing what other connections committed meanwhile."""
    handler = OneHopASGIHandler(threads=RequestThreads())
    status, body = await Client(handler, "/database").response()
    assert (status, body) == (200, b'{"users": 0}')
    await sync_to_async(User.objects.create_user, thread_sensitive=False)("someone")

    status, body = await Client(handler, "/database").response()

    assert (status, body) == (200, b'{"users": 1}')
    assert len(set(seen["view"] if "view" in seen else seen["request_started"])) == 1
    first, second = seen["raw connection"]
    assert first is second


@sqlite_only
async def test_a_connection_left_in_a_transaction_is_closed_not_kept():
    handler = OneHopASGIHandler(threads=RequestThreads())
    assert (await Client(handler, "/database?leave=transaction").response())[0] == 200

    assert (await Client(handler, "/database").response()) == (200, b'{"users": 0}')

    first, second = seen["raw connection"]
    assert first is not second  # the first was closed, the next request opened another


@sqlite_only
async def test_only_so_many_threads_keep_a_connection():
    threads = RequestThreads(keeping=1)
    handler = OneHopASGIHandler(threads=threads)
    slow = Client(handler, "/blocked")
    await asyncio.to_thread(view_started.wait, 5)
    assert (await Client(handler, "/database").response())[0] == 200  # a second thread
    assert (await Client(handler, "/database").response())[0] == 200
    release.set()
    await slow.response()

    assert threads.keeping == 1
    first, second = seen["raw connection"]
    assert first is not second  # the second thread keeps none: one connection per request


@sqlite_only
async def test_work_a_request_leaves_to_the_loop_never_gets_the_kept_connection():
    """Work handed to the loop runs in a copy of the request's context; the kept connection is
    taken out of that context before the next request may use it on its thread."""
    loop_of_test[:] = [asyncio.get_running_loop()]
    late.clear()
    handler = OneHopASGIHandler(threads=RequestThreads())
    assert (await Client(handler, "/database?late=work").response())[0] == 200
    await asyncio.sleep(0.05)

    assert late and late[0] is not seen["wrapper"][0]
