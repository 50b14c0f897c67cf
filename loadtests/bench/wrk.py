"""wrk as the load generator of `reengage bench score`: bodies, Lua script, run, parse.

A Lua script cycles through pre-built request bodies (formatted once per thread in
``init``, so ``request`` only returns a string), counts failed responses by status, and
its ``done`` hook prints the counts and latency percentiles as one JSON line. The CPU
wrk itself used comes from ``wait4`` on its pid, so a load generator near its limit
shows beside each figure.
"""

from __future__ import annotations

import json
import os
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

WRK_MARK = "WRK_JSON "

LUA = """-- reengage bench score: POST pre-built bodies, one per line of the bodies file, in turn
local path, file, headers = %(path)s, %(file)s, %(headers)s
local reqs, n, i, threads = {}, 0, 0, {}
codes, sample = {}, nil  -- failed responses by status and the first one's body, per thread
                         -- (globals: done reads them with thread:get)
function setup(thread)
  threads[#threads + 1] = thread
  thread:set("tid", #threads)
end
function init(args)
  for line in io.lines(file) do
    n = n + 1
    reqs[n] = wrk.format("POST", path, headers, line)
  end
  i = ((tid or 1) * 7919) %% n  -- threads start at different bodies
end
function request()
  i = i %% n + 1
  return reqs[i]
end
function response(status, headers, body)
  if status >= 300 then
    codes[status] = (codes[status] or 0) + 1
    sample = sample or string.sub(body, 1, 300)
  end
end
function done(summary, latency, requests)
  local all, parts, first = {}, {}, ""
  for _, t in ipairs(threads) do
    for code, count in pairs(t:get("codes") or {}) do all[code] = (all[code] or 0) + count end
    if first == "" then first = t:get("sample") or "" end
  end
  first = first:gsub('[%%c"\\\\]', function(c) return string.format("\\\\u%%04x", c:byte()) end)
  for code, count in pairs(all) do parts[#parts + 1] = string.format('"%%d":%%d', code, count) end
  local e = summary.errors
  io.write(string.format('%(mark)s{"requests":%%d,"duration_us":%%d,"bytes":%%d,"p50_us":%%.1f,' ..
    '"p99_us":%%.1f,"mean_us":%%.1f,"max_us":%%.1f,' ..
    '"errors":{"connect":%%d,"read":%%d,"write":%%d,"status":%%d,"timeout":%%d},' ..
    '"status_codes":{%%s},"error_sample":"%%s"}\\n', summary.requests,
    summary.duration, summary.bytes, latency:percentile(50), latency:percentile(99),
    latency.mean, latency.max, e.connect, e.read, e.write, e.status, e.timeout,
    table.concat(parts, ","), first))
end
"""


# -- pure parts (tests/loadtests/bench/test_wrk.py) -----------------------------------------
def request_bodies(customers: int, ids: int, count: int, seed: int = 0) -> list[str]:
    """``count`` /v1/score bodies, each of ``ids`` distinct random ids in 1..customers."""
    if not 1 <= ids <= customers:
        raise ValueError(f"{ids} ids per request needs 1..{customers} customers")
    rng = np.random.default_rng(seed)
    return [
        json.dumps(
            {"customer_ids": (rng.choice(customers, size=ids, replace=False) + 1).tolist()},
            separators=(",", ":"),
        )
        for _ in range(count)
    ]


def bodies_per_point(ids: int) -> int:
    """Enough distinct bodies that caches see varied ids, few enough to stay small."""
    return max(8, min(256, 200_000 // ids))


def lua_script(bodies_file: Path, path: str, headers: dict[str, str] | None = None) -> str:
    """The wrk script: POST the bodies of ``bodies_file`` (one a line) to ``path`` in turn,
    as JSON, with ``headers`` besides (``reengage bench flood``: a wrong bearer token)."""
    sent = {"Content-Type": "application/json", **(headers or {})}
    table = "{" + ", ".join(f"[{json.dumps(k)}] = {json.dumps(v)}" for k, v in sent.items()) + "}"
    return LUA % {
        "path": json.dumps(path),
        "file": json.dumps(str(bodies_file)),
        "headers": table,
        "mark": WRK_MARK,
    }


def parse_wrk(output: str) -> dict[str, Any]:
    """wrk's output -> requests, req/s of 2xx answers, latency (ms, every answer) and errors
    (status codes >= 300 and socket errors), from the done hook's JSON."""
    line = next((ln for ln in output.splitlines() if ln.startswith(WRK_MARK)), None)
    if line is None:
        raise ValueError(f"no {WRK_MARK.strip()} line in wrk's output: {output[-400:]!r}")
    raw = json.loads(line[len(WRK_MARK) :])
    seconds = raw["duration_us"] / 1e6
    errors = raw["errors"]
    codes = raw.get("status_codes", {})  # every answer >= 300 (wrk's own count starts at 400)
    non_2xx = sum(codes.values()) if "status_codes" in raw else errors["status"]
    ok = max(0, raw["requests"] - non_2xx)

    def ms(key: str) -> float | None:  # no latency without a completed request
        return raw[key] / 1e3 if raw["requests"] else None

    return {
        "requests": raw["requests"],
        "ok": ok,
        "seconds": seconds,
        "req_s": ok / seconds if seconds > 0 else 0.0,
        "p50_ms": ms("p50_us"),
        "p99_ms": ms("p99_us"),
        "mean_ms": ms("mean_us"),
        "max_ms": ms("max_us"),
        "non_2xx": non_2xx,
        "errors": non_2xx + sum(v for k, v in errors.items() if k != "status"),
        "error_kinds": errors,
        "status_codes": codes,
        "error_sample": raw.get("error_sample") or None,
        "bytes": raw["bytes"],
    }


def cpu_share(cpu_seconds: float, wall_seconds: float) -> float:
    """CPU time over wall time: 1.0 is one core kept busy."""
    return cpu_seconds / wall_seconds if wall_seconds > 0 else 0.0


def run_wrk(
    url: str, script: Path, *, concurrency: int, seconds: float, threads: int = 1
) -> dict[str, Any]:
    """One wrk run; its own CPU time comes from wait4 on its pid."""
    cmd = [
        "wrk",
        f"-t{max(1, min(threads, concurrency))}",
        f"-c{concurrency}",
        f"-d{max(1, round(seconds))}s",
        "--timeout",
        "60s",
        "-s",
        str(script),
        url,
    ]
    with tempfile.TemporaryFile() as out:
        start = time.perf_counter()
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT)
        _, status, usage = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - start
        proc.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        text = out.read().decode(errors="replace")
    if proc.returncode != 0:
        raise RuntimeError(f"wrk exited with {proc.returncode}: {text[-400:]}")
    return {**parse_wrk(text), "wrk_cpu": cpu_share(usage.ru_utime + usage.ru_stime, wall)}
