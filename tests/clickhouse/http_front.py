"""A test-only HTTP server speaking the part of ClickHouse's HTTP interface that clickhouse-connect
uses, executing every statement on the chdb engine of this process.

Why this is a faithful stand-in for the transport (no modern ClickHouse server installs here):
- The client is the real `clickhouse_connect.get_client(host=127.0.0.1, port=…)` HTTP client, with
  its own request building, compression, parameter binding and Native (de)serialisation; nothing on
  the client side is replaced.
- The server side only parses HTTP the way ClickHouse documents it — the statement from the `query`
  URL parameter followed by the request body (so an INSERT's data follows its statement), `database`,
  `param_<name>` server-side parameters, every other URL parameter as a query setting, request bodies
  compressed with lz4 or gzip, `GET /ping` — and hands the statement, parameters, settings and
  data to the real ClickHouse engine (chdb 26.9) on a handle of its own. The bytes
  sent back are the engine's own output in the requested format (Native for queries), and errors are
  the engine's `Code: N. DB::Exception` text with HTTP 500, as ClickHouse sends them.
- What it does not do: sessions, progress headers, HTTP response compression, auth (the user and
  password are accepted as sent). clickhouse-connect does not need them for correct results.

`fail_next(n)` makes the next n statements that match a predicate fail *after* the engine ran them
(HTTP 503, as a proxy timing out would), to show that retried inserts are dropped as duplicates.
"""

from __future__ import annotations

import gzip
import os
import re
import tempfile
import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import chdb
import lz4.frame

# URL parameters that are protocol, not query settings.
_PROTOCOL = {
    "query",
    "database",
    "query_id",
    "session_id",
    "session_timeout",
    "compress",
    "decompress",
    "user",
    "password",
    "default_format",
    "wait_end_of_query",
    "enable_http_compression",
    "client_protocol_version",
}
# The data starts right after the newline that ends the statement: binary data may begin with bytes
# that look like whitespace (Native's column count 32 is a space), so nothing more is skipped.
_INSERT = re.compile(r"^\s*INSERT\s+INTO\s+(\S+)\s*(?:\(([^)]*)\))?\s*FORMAT\s+(\w+)\n?", re.I | re.S)
_FORMAT = re.compile(r"\s+FORMAT\s+(\w+)\s*;?\s*$", re.I)


class ChdbHttpFront:
    """ThreadingHTTPServer on 127.0.0.1:<free port>; statements run one at a time on chdb."""

    def __init__(self, chdb_url: str) -> None:
        # A handle of its own on the process's one engine (the same path as the stores under test).
        self._conn = chdb.connect(os.path.realpath(chdb_url.removeprefix("chdb://")))
        self._database = ""
        self._lock = threading.Lock()
        self.statements: list[str] = []
        self._fail: tuple[int, Callable[[str], bool]] = (0, lambda s: False)
        self._fail_runs = True
        front = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: Any) -> None:
                pass

            def do_GET(self) -> None:
                if urlsplit(self.path).path == "/ping":
                    self._reply(200, b"Ok.\n")
                else:
                    self._handle(b"")

            def do_POST(self) -> None:
                if "chunked" in (self.headers.get("Transfer-Encoding") or "").lower():
                    self._handle(self._read_chunked())
                else:
                    self._handle(self.rfile.read(int(self.headers.get("Content-Length") or 0)))

            def _read_chunked(self) -> bytes:
                # clickhouse-connect streams insert blocks with chunked transfer encoding.
                parts = []
                while True:
                    size = int(self.rfile.readline().split(b";")[0].strip(), 16)
                    if size == 0:
                        self.rfile.readline()
                        return b"".join(parts)
                    parts.append(self.rfile.read(size))
                    self.rfile.readline()

            def _handle(self, body: bytes) -> None:
                encoding = (self.headers.get("Content-Encoding") or "").lower()
                try:
                    status, data, fmt = front.execute(
                        dict(parse_qsl(urlsplit(self.path).query)), body, encoding
                    )
                except Exception as e:  # the engine's message, as ClickHouse sends it
                    text = str(e)
                    code = re.search(r"Code: (\d+)", text)
                    self._reply(
                        500, text.encode(), {"X-ClickHouse-Exception-Code": code.group(1) if code else "0"}
                    )
                    return
                self._reply(status, data, {"X-ClickHouse-Format": fmt} if fmt else {})

            def _reply(self, status: int, data: bytes, headers: dict[str, str] | None = None) -> None:
                self.send_response(status)
                self.send_header("Content-Length", str(len(data)))
                self.send_header("X-ClickHouse-Timezone", "UTC")
                self.send_header("X-ClickHouse-Server-Display-Name", "chdb-http-front")
                for k, v in (headers or {}).items():
                    self.send_header(k, v)
                self.end_headers()
                self.wfile.write(data)

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = int(self._server.server_address[1])
        self.url = f"http://127.0.0.1:{self.port}"
        self._thread = threading.Thread(target=self._server.serve_forever, name="chdb-http", daemon=True)
        self._thread.start()

    def fail_next(self, count: int, matches: Callable[[str], bool], *, run: bool = True) -> None:
        """The next `count` statements for which `matches(statement)` is true answer 503: after the
        engine ran them (`run`, a lost answer) or without running them (a crash before the write)."""
        self._fail = (count, matches)
        self._fail_runs = run

    def _run(self, sql: str, fmt: str, binds: dict[str, str], settings: dict[str, str]) -> bytes:
        """One statement on the engine: settings for this statement only, parameters as sent (text)."""
        conn = self._conn
        for name, value in settings.items():
            conn.query(f"SET {_setting_name(name)} = {_literal(value)}", "TabSeparated")
        try:
            # Without a FORMAT clause ClickHouse answers in TabSeparated, its HTTP default.
            return bytes(conn.query(sql, fmt or "TabSeparated", params=binds).bytes())
        finally:
            for name in settings:
                conn.query(f"SET {_setting_name(name)} = DEFAULT", "TabSeparated")

    def execute(self, params: dict[str, str], body: bytes, encoding: str) -> tuple[int, bytes, str]:
        if encoding == "lz4":
            body = lz4.frame.decompress(body)
        elif encoding == "gzip":
            body = gzip.decompress(body)
        elif encoding:
            raise ValueError(f"Code: 1. DB::Exception: unsupported Content-Encoding {encoding} (test front)")
        query = params.get("query", "")
        binds = {k[len("param_") :]: v for k, v in params.items() if k.startswith("param_")}
        settings = {k: v for k, v in params.items() if k not in _PROTOCOL and not k.startswith("param_")}
        with self._lock:
            database = params.get("database", "default")
            if database != self._database:
                self._conn.query(f"USE `{database}`", "TabSeparated")
                self._database = database
            insert = _INSERT.match(query) or (
                None if query else _INSERT.match(body.decode("utf-8", "replace"))
            )
            count, matches = self._fail
            head = insert.group(0) if insert is not None else query + "\n" + body.decode("utf-8", "replace")
            if not self._fail_runs and count and matches(head.lstrip()):
                self._fail = (count - 1, matches)
                return 503, b"Code: 210. DB::NetException: Connection reset by peer", ""
            if insert is not None:
                # The data is what follows the statement: the whole body, or the body after it.
                data = body if query else body[len(insert.group(0).encode()) :]
                statement = insert.group(0)
                with tempfile.NamedTemporaryFile(suffix=".data") as tmp:
                    tmp.write(data)
                    tmp.flush()
                    columns = f"({insert.group(2)})" if insert.group(2) else ""
                    into = f"INSERT INTO {insert.group(1)} {columns}"
                    sql = f"{into} FROM INFILE '{tmp.name}' FORMAT {insert.group(3)}"
                    self._run(sql, "", {}, settings)
                out, fmt = b"", ""
            else:
                statement = (query + "\n" + body.decode()) if query else body.decode()
                found = _FORMAT.search(statement)
                fmt = found.group(1) if found else ""
                sql = statement[: found.start()] if found else statement
                out = self._run(sql, fmt, binds, settings)
            self.statements.append(statement)
            if self._fail_runs and count and matches(statement):
                self._fail = (count - 1, matches)
                return 503, b"Code: 209. DB::NetException: Timeout exceeded while reading from socket", ""
        return 200, out, fmt

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        with self._lock:
            self._conn.close()


def _setting_name(name: str) -> str:
    if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", name):
        raise ValueError(f"Code: 115. DB::Exception: Unknown setting {name!r}")
    return name


def _literal(value: str) -> str:
    """A setting value from the URL: numbers as they are, anything else as a quoted string."""
    if re.fullmatch(r"-?\d+(\.\d+)?", value):
        return value
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"
