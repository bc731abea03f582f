"""`openpanel serve`: granian (embedded, one process, one worker) running the Litestar app.

DuckDB allows one process per database file, so the server is a single process: granian's
embedded server runs inside our own event loop, which also owns signal handling.
"""

from __future__ import annotations

import asyncio
import errno
import gc
import signal
import socket
import sys

from openpanel_lite import logs
from openpanel_lite.app import create_app
from openpanel_lite.config import Config
from openpanel_lite.dashboard import realtime_stream
from openpanel_lite.ingest.fastpath import TrackFastPath
from openpanel_lite.runtime import Runtime, StartupError


def check_port_free(host: str, port: int) -> None:
    """Fail early, with one line, when the address is taken (granian would print a traceback)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError as e:
            if e.errno == errno.EADDRINUSE:
                raise StartupError(f"port {port} on {host} is already in use") from None
            if e.errno == errno.EADDRNOTAVAIL:
                raise StartupError(f"cannot listen on {host}: address not available") from None
            if e.errno == errno.EACCES:
                raise StartupError(f"no permission to listen on {host}:{port}") from None
            raise StartupError(f"cannot listen on {host}:{port}: {e.strerror}") from None


def run(cfg: Config) -> int:
    """Run until SIGTERM/SIGINT; 0 on a clean stop. Raises StartupError for user-fixable problems."""
    check_port_free(cfg.server.host, cfg.server.port)
    runtime = Runtime(cfg)
    runtime.start()
    # Startup objects (parsers, regex sets, config) never die: keep them out of every GC pass, and
    # collect young objects less often, so full collections do not stall ingest for 100s of ms.
    gc.collect()
    gc.freeze()
    gc.set_threshold(50_000, 20, 100)
    try:
        return _run_loop(_serve(cfg, runtime))
    finally:
        runtime.close()


def _run_loop(main: object) -> int:
    try:
        import uvloop
    except ImportError:  # pragma: no cover - uvloop is a dependency except on Windows
        return asyncio.run(main)  # type: ignore[arg-type]
    return int(uvloop.run(main))  # type: ignore[arg-type]


async def _serve(cfg: Config, runtime: Runtime) -> int:
    from granian.constants import HTTPModes, Interfaces
    from granian.server.embed import Server

    app = create_app(cfg, runtime=runtime)
    url = cfg.base_url if not cfg.server.public_url else f"http://{cfg.server.host}:{cfg.server.port}"

    async def announce() -> None:
        # The socket is bound before the lifespan runs, so the URL is reachable from here on.
        print(f"openpanel-lite listening on {url}", flush=True)
        logs.log("server_ready", url=url, data_dir=str(cfg.data_dir))

    app.on_startup.append(announce)
    server = Server(
        TrackFastPath(app, runtime),
        address=cfg.server.host,
        port=cfg.server.port,
        interface=Interfaces.ASGI,
        # Browsers and SDKs talk HTTP/1.1 to an appliance (TLS, and so HTTP/2, ends at a proxy).
        http=HTTPModes.http1,
        log_enabled=False,
        log_access=False,
        backlog=2048,
    )
    loop = asyncio.get_running_loop()
    stopping = False

    def stop(signum: int) -> None:
        nonlocal stopping
        if stopping:
            return
        stopping = True
        logs.log("server_stopping", signal=signal.Signals(signum).name)
        # granian waits for open responses before the lifespan shutdown: end live streams first.
        realtime_stream.close_all()
        server.stop()  # type: ignore[no-untyped-call]

    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop, signum)
    try:
        await server.serve()
    except OSError as e:
        print(f"openpanel: error: cannot serve on {cfg.server.host}:{cfg.server.port}: {e}", file=sys.stderr)
        return 1
    logs.log("server_stopped")
    return 0


__all__ = ["StartupError", "check_port_free", "run"]
