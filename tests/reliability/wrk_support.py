"""wrk (a C load generator, apt `wrk`) driving /track for the overload and burst tests (R08, R09).

Each wrk thread numbers its requests; an event's `__eventId` is a UUID made of (thread, phase, n), so
every stored row can be traced to the request that carried it. wrk cannot say which request got which
answer, so the Lua script counts answers by class (2xx, 429/503 with and without Retry-After, other)
and the tests check stored rows against those counts; the exact per-id oracle comes from the Python
Load running alongside (crash_support.Load).
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

from tests.reliability.crash_support import CHROME, PROBE

LUA = r"""
local threads = {}
local counter = 0

function setup(thread)
  counter = counter + 1
  thread:set("tid", counter)
  table.insert(threads, thread)
end

function init(args)
  phase = tonumber(args[1])
  depth = tonumber(args[2])
  n = 0
  ok = 0
  shed = 0
  shed_without_retry_after = 0
  other = 0
  headers = {}
  headers["Content-Type"] = "application/json"
  headers["openpanel-client-id"] = "@CLIENT@"
  headers["Origin"] = "https://example.com"
  headers["User-Agent"] = "@UA@"
end

local function one()
  n = n + 1
  local id = string.format("%08x-%04x-4000-8000-%012x", tid, phase, n)
  local body = '{"type":"track","payload":{"name":"@NAME@","properties":{"__eventId":"' .. id ..
    '","__path":"https://example.com/page/' .. (n % 97) .. '"}}}'
  return wrk.format("POST", "/track", headers, body)
end

function request()
  -- `depth` requests written at once on the connection (HTTP/1.1 pipelining).
  local parts = {}
  for i = 1, depth do parts[i] = one() end
  return table.concat(parts)
end

function response(status, hdrs, body)
  if status >= 200 and status < 300 then
    ok = ok + 1
  elseif status == 429 or status == 503 then
    shed = shed + 1
    if hdrs["Retry-After"] == nil and hdrs["retry-after"] == nil then
      shed_without_retry_after = shed_without_retry_after + 1
    end
  else
    other = other + 1
  end
end

function done(summary, latency, requests)
  local t = {sent = 0, ok = 0, shed = 0, shed_without_retry_after = 0, other = 0}
  local per_thread = {}
  for _, th in ipairs(threads) do
    for k, _ in pairs(t) do
      local v = th:get(k == "sent" and "n" or k)
      t[k] = t[k] + v
    end
    table.insert(per_thread, string.format('"%d":%d', th:get("tid"), th:get("n")))
  end
  io.write(string.format(
    'WRK {"sent":%d,"ok":%d,"shed":%d,"shed_without_retry_after":%d,"other":%d,"errors":%d,' ..
    '"timeouts":%d,"duration_us":%d,"p50_us":%d,"p99_us":%d,"sent_per_thread":{%s}}\n',
    t.sent, t.ok, t.shed, t.shed_without_retry_after, t.other,
    summary.errors.connect + summary.errors.read + summary.errors.write + summary.errors.status,
    summary.errors.timeout, summary.duration, latency:percentile(50), latency:percentile(99),
    table.concat(per_thread, ",")))
end
"""


def have_wrk() -> bool:
    return shutil.which("wrk") is not None


@dataclass
class WrkResult:
    sent: int  # requests generated (written or about to be)
    ok: int  # 2xx answers read
    shed: int  # 429/503 answers read
    shed_without_retry_after: int
    other: int  # any other status
    errors: int
    timeouts: int
    seconds: float
    p50_ms: float
    p99_ms: float
    sent_per_thread: dict[int, int]

    @property
    def answered(self) -> int:
        return self.ok + self.shed + self.other

    def ok_per_s(self) -> float:
        return self.ok / self.seconds


def write_script(path: Path, client_id: str) -> Path:
    text = LUA.replace("@CLIENT@", client_id).replace("@UA@", CHROME).replace("@NAME@", PROBE)
    path.write_text(text)
    return path


def run_wrk(
    script: Path, port: int, *, threads: int, connections: int, seconds: int, phase: int, depth: int = 1
) -> WrkResult:
    cmd = ["wrk", f"-t{threads}", f"-c{connections}", f"-d{seconds}s", "--timeout", "10s"]
    cmd += ["-s", str(script), f"http://127.0.0.1:{port}", "--", str(phase), str(depth)]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=seconds + 120)
    match = re.search(r"^WRK (\{.*\})$", out.stdout, re.M)
    assert match, f"wrk printed no summary: {out.stdout}\n{out.stderr}"
    data = json.loads(match.group(1))
    return WrkResult(
        sent=data["sent"],
        ok=data["ok"],
        shed=data["shed"],
        shed_without_retry_after=data["shed_without_retry_after"],
        other=data["other"],
        errors=data["errors"],
        timeouts=data["timeouts"],
        seconds=data["duration_us"] / 1e6,
        p50_ms=data["p50_us"] / 1000,
        p99_ms=data["p99_us"] / 1000,
        sent_per_thread={int(k): v for k, v in data["sent_per_thread"].items()},
    )


def wrk_ids(stored: set[str], phase: int) -> set[str]:
    """The stored ids a wrk run of `phase` generated (the others come from crash_support.Load)."""
    tag = f"-{phase:04x}-4000-8000-"
    return {i for i in stored if tag in i}


def generated(ids: set[str], result: WrkResult, phase: int) -> set[str]:
    """Those of `ids` the wrk run really generated: its phase, one of its threads, n ≤ that thread's count."""
    out = set()
    for i in wrk_ids(ids, phase):
        tid, _, _, _, n = i.split("-")
        if 1 <= int(n, 16) <= result.sent_per_thread.get(int(tid, 16), 0):
            out.add(i)
    return out
