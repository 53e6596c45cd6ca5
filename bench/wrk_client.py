"""wrk, the compiled HTTP load generator, driven by api_load.py when it is installed (Debian: `wrk`).

On 2 cores the load generator competes with gunicorn and PostgreSQL: a Python client spends
about as much CPU per request as a GET costs the server. wrk spends a fraction of that. Each
scenario is a small Lua script written to a temporary directory; its `done` prints one JSON line
(requests, errors by kind, latency percentiles in ms), read back here.
"""

from __future__ import annotations

import json
import resource
import shutil
import subprocess
from pathlib import Path

DONE = r"""
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    '{"requests": %d, "duration_us": %d, "connect": %d, "read": %d, "write": %d, "status": %d, "timeout": %d, ' ..
    '"p50": %.3f, "p90": %.3f, "p99": %.3f, "max": %.3f, "mean": %.3f}\n',
    summary.requests, summary.duration, e.connect, e.read, e.write, e.status, e.timeout,
    latency:percentile(50) / 1000, latency:percentile(90) / 1000, latency:percentile(99) / 1000,
    latency.max / 1000, latency.mean / 1000))
end
"""

IDS = r"""
local ids = {}
init = function(args)
  for line in io.lines("%(ids)s") do ids[#ids + 1] = line end
  math.randomseed(os.time() + tonumber(tostring(ids):match("0x(%%x+)") or "0", 16) %% 100000)
end
local function any_id() return ids[math.random(#ids)] end
"""


def wrk_path() -> str | None:
    return shutil.which("wrk")


def wrk_version() -> str:
    path = wrk_path()
    if not path:
        return ""
    completed = subprocess.run([path, "--version"], capture_output=True, text=True, timeout=10)
    return (completed.stdout or completed.stderr).strip().splitlines()[0] if (completed.stdout or completed.stderr) else "wrk"


def write_scripts(directory: Path, *, api_key: str, post_body: bytes, ids_file: Path, post_every: int = 5) -> dict[str, Path]:
    """The scenarios' scripts: post, get (a random id of ids_file), list, mix (one POST in post_every, else GET)."""
    head = (
        f'wrk.headers["Authorization"] = "Bearer {api_key}"\n'
        'wrk.headers["Accept"] = "application/json"\n'
        'wrk.headers["Content-Type"] = "application/json"\n'
    )
    body = post_body.decode().replace("\\", "\\\\").replace('"', '\\"')
    ids = IDS % {"ids": str(ids_file)}
    scripts = {
        "post": head + f'wrk.method = "POST"\nwrk.path = "/v1/payments"\nwrk.body = "{body}"\n',
        "get": head + ids + 'request = function() return wrk.format("GET", "/v1/payments/" .. any_id()) end\n',
        "list": head + 'wrk.method = "GET"\nwrk.path = "/v1/payments"\n',
        "mix": head
        + ids
        + "local n = 0\n"
        + "request = function()\n  n = n + 1\n"
        + f'  if n % {post_every} == 0 then return wrk.format("POST", "/v1/payments", nil, "{body}") end\n'
        + '  return wrk.format("GET", "/v1/payments/" .. any_id())\nend\n',
    }
    paths = {}
    for name, text in scripts.items():
        path = directory / f"wrk-{name}.lua"
        path.write_text(text + DONE)
        paths[name] = path
    return paths


def run_wrk(*, url: str, script: Path, connections: int, duration: float, threads: int = 2, timeout_s: int = 30) -> dict:
    """Run wrk once; returns its JSON line plus `cpu_s` (wrk's own CPU seconds, from rusage)."""
    command = [
        wrk_path() or "wrk",
        "-t", str(max(1, min(threads, connections))),
        "-c", str(connections),
        "-d", f"{max(1, round(duration))}s",
        "--timeout", f"{timeout_s}s",
        "-s", str(script),
        url,
    ]  # fmt: skip
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    completed = subprocess.run(command, capture_output=True, text=True, timeout=duration + timeout_s + 60)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    lines = [line for line in completed.stdout.splitlines() if line.startswith("{")]
    if completed.returncode != 0 or not lines:
        raise RuntimeError(f"wrk failed ({completed.returncode}): {completed.stderr[-500:]} {completed.stdout[-500:]}")
    result = json.loads(lines[-1])
    result["cpu_s"] = (after.ru_utime + after.ru_stime) - (before.ru_utime + before.ru_stime)
    result["stdout"] = completed.stdout[-2000:]
    return result
