"""Operational routes: /healthz and /metrics."""

from __future__ import annotations

from litestar import Response, Router, get
from litestar.di import NamedDependency

from openpanel_lite.metrics import CONTENT_TYPE
from openpanel_lite.runtime import Health, Runtime


@get("/healthz", sync_to_thread=True, summary="Health of the metadata DB, event store and queues")
def healthz(runtime: NamedDependency[Runtime]) -> Response[Health]:
    """200 when every part works; 503 naming the failed parts."""
    health = runtime.health()
    return Response(health, status_code=200 if health.status == "ok" else 503)


@get("/metrics", sync_to_thread=False, include_in_schema=False)
def metrics(runtime: NamedDependency[Runtime]) -> Response[bytes]:
    return Response(runtime.metrics.render(), media_type=CONTENT_TYPE)


router = Router(path="/", route_handlers=[healthz, metrics])
