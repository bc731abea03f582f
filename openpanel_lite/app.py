"""create_app(): the one place that lists the routers and wires the runtime into Litestar."""

from __future__ import annotations

from collections.abc import AsyncGenerator
from contextlib import asynccontextmanager

from litestar import Litestar
from litestar.datastructures import State
from litestar.di import Provide
from litestar.openapi import OpenAPIConfig
from litestar.plugins.jinja import JinjaTemplateEngine
from litestar.static_files import create_static_files_router
from litestar.template import TemplateConfig

from openpanel_lite import __version__, dashboard, logs, ops, paths
from openpanel_lite.api import export as export_api
from openpanel_lite.api import query_routes
from openpanel_lite.config import Config
from openpanel_lite.dashboard import explorers as explorer_pages
from openpanel_lite.dashboard import formatting
from openpanel_lite.dashboard import overview as overview_page
from openpanel_lite.dashboard import realtime as realtime_page
from openpanel_lite.ingest import routes as ingest_routes
from openpanel_lite.meta.db import MetaDB
from openpanel_lite.runtime import Runtime
from openpanel_lite.storage import EventStore


def create_app(
    cfg: Config,
    *,
    meta: MetaDB | None = None,
    store: EventStore | None = None,
    runtime: Runtime | None = None,
) -> Litestar:
    """Build the app. Parts not injected are opened in the lifespan and closed after it.

    `openpanel serve` passes an already started runtime so startup errors surface before granian runs.
    """
    if runtime is None:
        runtime = Runtime(cfg, meta=meta, store=store)

    @asynccontextmanager
    async def lifespan(app: Litestar) -> AsyncGenerator[None, None]:
        await runtime.start_serving()
        logs.log("app_started", data_dir=str(cfg.data_dir), backend=cfg.storage.backend)
        try:
            yield
        finally:
            await runtime.stop_serving()
            runtime.close()
            logs.log("app_stopped")

    web = paths.web_dir()
    return Litestar(
        route_handlers=[
            ops.router,
            ingest_routes.router,
            export_api.router,
            query_routes.router,
            *dashboard.routers(),
            realtime_page.router,
            explorer_pages.router,
            overview_page.router,
            create_static_files_router(path="/static", directories=[web / "static"], include_in_schema=False),
        ],
        dependencies={
            "runtime": Provide(lambda: runtime, use_cache=True, sync_to_thread=False),
            "ingest": Provide(lambda: runtime.ingest.service, sync_to_thread=False),
        },
        lifespan=[lifespan],
        template_config=TemplateConfig(
            directory=web / "templates",
            engine=JinjaTemplateEngine,
            # The dashboard's number and link filters (|compact_number, |delta, |local_url …).
            engine_callback=lambda engine: formatting.register(engine.engine),
        ),
        openapi_config=OpenAPIConfig(title="openpanel-lite", version=__version__, path="/schema"),
        state=State({"runtime": runtime}),
        logging_config=None,
    )
