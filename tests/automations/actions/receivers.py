"""Real HTTP receivers on loopback addresses, answering as a test tells them to.

`Receiver(answer)` serves in a thread; every request is recorded (method, path, headers, body)
and `answer(request)` returns `(status, headers, body)`. It may also write its answer slowly
(`drip`), to test the deadline on answers that never end.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

Answer = tuple[int, dict[str, str], bytes]


def ok(request: dict) -> Answer:
    return 200, {"content-type": "text/plain"}, b"ok"


class Receiver:
    def __init__(
        self,
        answer: Callable[[dict], Answer] = ok,
        *,
        host: str = "127.0.0.1",
        drip: float = 0.0,
    ):
        self.answer = answer
        self.requests: list[dict] = []
        self.arrived = threading.Event()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def _handle(self):
                length = int(self.headers.get("content-length") or 0)
                data = self.rfile.read(length) if length else b""
                request = {
                    "method": self.command,
                    "path": self.path,
                    "headers": {k.lower(): v for k, v in self.headers.items()},
                    "body": data.decode(),
                }
                receiver.requests.append(request)
                receiver.arrived.set()
                status, headers, body = receiver.answer(request)
                try:
                    self.send_response(status)
                    for name, value in headers.items():
                        self.send_header(name, value)
                    if not drip:
                        self.send_header("content-length", str(len(body)))
                    self.end_headers()
                    if drip:
                        for byte in body:
                            self.wfile.write(bytes([byte]))
                            self.wfile.flush()
                            time.sleep(drip)
                    else:
                        self.wfile.write(body)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the client gave up, as it should

            do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = _handle

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer((host, 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://{host}:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def json(self, index: int = -1) -> dict:
        return json.loads(self.requests[index]["body"])

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
