"""The HTML snippet a site owner pastes into their pages."""

from __future__ import annotations

import json

from openpanel_lite.ingest.tracker_route import tracker_file

# A queueing stub: op('x', ...) and op.x(...) both push [x, ...] onto op.q until op1.js replaces it.
_STUB = (
    "window.op=window.op||function(){var q=[];return new Proxy(function(){"
    "arguments.length&&q.push([].slice.call(arguments))},{get:function(t,k){"
    'return k==="q"?q:function(){q.push([k].concat([].slice.call(arguments)))}},'
    'has:function(t,k){return k==="q"}})}();'
)


def tracking_snippet(base_url: str, client_id: str) -> str:
    """Snippet for a project: the stub, init options, and our op1.js tracker from this server.

    The script URL names the tracker's version (`op1.js?v=<first 8 hex of its sha256>`), which the server
    answers with a year's immutable cache.
    """
    base = base_url.rstrip("/")
    options = json.dumps(
        {
            "apiUrl": base,
            "clientId": client_id,
            "trackScreenViews": True,
            "trackOutgoingLinks": True,
            "trackAttributes": True,
        },
        separators=(",", ":"),
    )
    return (
        "<script>\n"
        f"{_STUB}\n"
        f"window.op('init',{options});\n"
        "</script>\n"
        f'<script src="{base}/op1.js?v={tracker_file().version}" defer async></script>'
    )
