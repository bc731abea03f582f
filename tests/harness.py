"""A real openpanel-lite HTTP server on 127.0.0.1, run in a background thread of the test process.

The test keeps direct access to the runtime (store, meta, writer), which a subprocess would lock away:
DuckDB allows one process per file.
"""

from __future__ import annotations

import asyncio
import json
import socket
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Coroutine, Mapping
from dataclasses import dataclass
from typing import Any, TypeVar

from granian.constants import Interfaces
from granian.server.embed import Server

from openpanel_lite.app import create_app
from openpanel_lite.config import Config
from openpanel_lite.dashboard import realtime_stream
from openpanel_lite.ingest.fastpath import TrackFastPath
from openpanel_lite.runtime import Runtime

T = TypeVar("T")


@dataclass
class HttpReply:
    status: int
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)

    @property
    def text(self) -> str:
        return self.body.decode()


class LiveServer:
    def __init__(self, cfg: Config) -> None:
        self.cfg = cfg
        self.runtime = Runtime(cfg)
        self.runtime.start()
        self.base = f"http://127.0.0.1:{cfg.server.port}"
        self._loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self._server: Server | None = None
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="live-server", daemon=True)
        self._thread.start()
        if not self._ready.wait(15):
            raise RuntimeError("server did not start")
        if self._error:
            raise self._error
        self._wait_listening()

    def _wait_listening(self, timeout_s: float = 10.0) -> None:
        # The lifespan (our ready signal) can run a few ms before granian accepts connections.
        deadline = time.monotonic() + timeout_s
        while True:
            try:
                socket.create_connection(("127.0.0.1", self.cfg.server.port), timeout=1).close()
                return
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.01)

    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)
        app = create_app(self.cfg, runtime=self.runtime)

        async def ready() -> None:
            self._ready.set()

        app.on_startup.append(ready)
        self._server = Server(
            TrackFastPath(app, self.runtime),
            address="127.0.0.1",
            port=self.cfg.server.port,
            interface=Interfaces.ASGI,
            log_enabled=False,
        )
        try:
            self._loop.run_until_complete(self._server.serve())
        except BaseException as e:  # surfaced to the test thread
            self._error = e
            self._ready.set()

    def call(self, coro: Coroutine[Any, Any, T], timeout: float = 30) -> T:
        """Run a coroutine on the server's loop (e.g. a writer flush) and return its result."""
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result(timeout)

    def flush(self) -> None:
        """Write everything accepted so far into the event store."""
        self.call(self.runtime.ingest.writer.flush())

    def rows(self, sql: str, params: Mapping[str, object] | None = None) -> list[tuple[Any, ...]]:
        self.flush()
        return self.runtime.store.fetch(sql, params or {})

    def request(
        self,
        method: str,
        path: str,
        body: bytes | str | dict[str, Any] | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> HttpReply:
        data: bytes | None
        if isinstance(body, dict):
            data = json.dumps(body).encode()
        elif isinstance(body, str):
            data = body.encode()
        else:
            data = body
        req = urllib.request.Request(self.base + path, data=data, method=method)
        for k, v in (headers or {}).items():
            req.add_header(k, v)
        if data is not None and not any(k.lower() == "content-type" for k in (headers or {})):
            req.add_header("Content-Type", "application/json")
        try:
            with urllib.request.urlopen(req, timeout=30) as r:
                return HttpReply(r.status, {k.lower(): v for k, v in r.headers.items()}, r.read())
        except urllib.error.HTTPError as e:
            return HttpReply(e.code, {k.lower(): v for k, v in e.headers.items()}, e.read())

    def stop(self) -> None:
        realtime_stream.close_all()  # open SSE responses would hold up granian's shutdown
        if self._server is not None:
            self._loop.call_soon_threadsafe(self._server.stop)
        self._thread.join(30)
        self.runtime.close()
