#!/usr/bin/env python
"""`make bench`: every benchmark in bench/, then one table of their figures, each beside its baseline.

Runs the benchmark scripts that exist (api_load, relay_throughput, refunds_batch,
settlement_batch, reconciliation), one after the other (they share the cores), each writing its
JSON into bench/results/. Then it reads the JSON each run wrote and prints one Markdown table
(figure, baseline of the same run, ratio, target), and writes it as
bench/results/summary-<UTC>.md and .json. A script that fails is reported and the others still run.

    .venv/bin/python bench/run_all.py                 # every benchmark, default sizes for a shared 2-core machine
    .venv/bin/python bench/run_all.py --only api relay
    .venv/bin/python bench/run_all.py --collect-only  # no runs: the newest result of each benchmark
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
RESULTS = BENCH / "results"

# name: (script, arguments of `make bench`, prefix of the JSON it writes)
# Each script drops and recreates its own database (`--database`, names below); --database-suffix
# gives each a name of its own, for a machine where someone else runs the same benchmarks.
DATABASES = {
    "api": "pgi_bench",
    "relay": "pgi_bench_relay",
    "refunds": "pgi_bench_refunds_batch",
    "settlement": "pgi_bench_settlement",
}
BENCHMARKS = {
    "api": ("api_load.py", ["--naive"], "api-"),
    "relay": ("relay_throughput.py", [], "relay-"),
    "refunds": ("refunds_batch.py", ["-n", "5000"], "refunds-"),
    "settlement": ("settlement_batch.py", ["-n", "100000"], "settlement-"),
    "reconciliation": ("reconciliation.py", [], "reconciliation-"),
}


def newest(prefix: str, since: float = 0.0) -> Path | None:
    found = [p for p in RESULTS.glob(f"{prefix}*.json") if p.stat().st_mtime >= since]
    return max(found, key=lambda p: p.stat().st_mtime) if found else None


def row(bench: str, figure: str, value, baseline_name: str = "", baseline=None, ratio=None, target: str = "", unit: str = "",
        p99_ms=None) -> dict:
    return {
        "p99_ms": p99_ms,
        "benchmark": bench,
        "figure": figure,
        "value": value,
        "unit": unit,
        "baseline": baseline_name,
        "baseline_value": baseline,
        "ratio": ratio,
        "target": target,
    }


def _ratio(a, b):
    return round(a / b, 4) if a is not None and b else None


def rows_api(data: dict) -> list[dict]:
    rows = []
    for goal in data.get("goals", []):
        rows.append(
            row("api", goal["goal"], goal["pgi_per_s"], goal["baseline"], goal["baseline_per_s"], goal["ratio"],
                f"{goal['target']}" + (f", p99 {goal['p99_target_ms']} ms" if goal.get("p99_target_ms") else ""),
                "/s" if goal["pgi_per_s"] is not None else "% growth", goal.get("p99_ms"))
        )
    # Beside the naive DRF build of the same endpoints, when the run had it (api_load.py --naive).
    rates = {s["name"]: s for s in data.get("scenarios", [])}
    for pgi, naive in (("api POST /v1/payments", "naive DRF build POST /v1/payments"),
                       ("api GET /v1/payments/{id}", "naive DRF build GET /v1/payments/{id}")):
        if pgi in rates and naive in rates:
            ours, theirs = rates[pgi]["rate_per_s"], rates[naive]["rate_per_s"]
            rows.append(row("api", f"{pgi.removeprefix('api ')}, beside a naive DRF build", ours, naive, theirs,
                            _ratio(ours, theirs), "", "/s", rates[pgi]["latency_ms"]["p99"]))
    return rows


def rows_relay(data: dict) -> list[dict]:
    relay, raw = data.get("relay", {}), data.get("raw") or {}
    return [row("relay", f"outbox relay, {data.get('events')} events", relay.get("per_second"),
                "raw confluent-kafka producer", raw.get("per_second"), data.get("ratio_relay_to_raw"), "", "events/s")]


def rows_refunds(data: dict) -> list[dict]:
    batch, base = data.get("batch", {}), data.get("baseline") or {}
    return [row("refunds", f"refunds batch, {data.get('refunds')} refunds", batch.get("per_second"),
                "raw SQL status updates", base.get("per_second"), _ratio(batch.get("per_second"), base.get("per_second")),
                "", "refunds/s")]


def rows_settlement(data: dict) -> list[dict]:
    run, base = data.get("settle_run_seconds"), data.get("baseline_group_by_seconds")
    return [row("settlement", f"settlement_run, {data.get('payments')} payments", run, "plain SQL GROUP BY", base,
                data.get("ratio_settle_run_to_group_by", _ratio(run, base)), "time ratio", "s")]


def rows_generic(name: str, data: dict) -> list[dict]:
    """A benchmark without an extractor here: its top-level ratios and times, as it wrote them."""
    rows = []
    for key, value in data.items():
        if key.startswith("ratio") and isinstance(value, (int, float)):
            rows.append(row(name, key, None, "", None, value))
        elif key.endswith("_seconds") and isinstance(value, (int, float)):
            rows.append(row(name, key, value, unit="s"))
    return rows or [row(name, "(no ratio in its JSON)", None)]


EXTRACT = {"api": rows_api, "relay": rows_relay, "refunds": rows_refunds, "settlement": rows_settlement}


def fmt(value) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:,.4g}" if abs(value) < 1 else f"{value:,.1f}"
    return str(value)


def markdown(rows: list[dict], runs: dict) -> str:
    lines = [
        "| benchmark | figure | PGI | baseline (same run) | ratio | p99 ms | target |",
        "|---|---|---:|---|---:|---:|---|",
    ]
    for r in rows:
        base = f"{fmt(r['baseline_value'])} ({r['baseline']})" if r["baseline"] else "-"
        value = f"{fmt(r['value'])} {r['unit']}".strip()
        lines.append(f"| {r['benchmark']} | {r['figure']} | {value} | {base} | {fmt(r['ratio'])} | {fmt(r.get('p99_ms'))} | {r['target']} |")
    lines.append("")
    for name, run in runs.items():
        lines.append(f"- {name}: {run['status']}" + (f", {run['result']}" if run.get("result") else ""))
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--only", nargs="*", choices=list(BENCHMARKS), help="run these benchmarks only")
    p.add_argument("--collect-only", action="store_true", help="run nothing; summarize the newest result of each")
    p.add_argument("--database-suffix", default="", help="append _SUFFIX to each benchmark's database name")
    p.add_argument("--args", nargs=2, action="append", default=[], metavar=("NAME", "ARGS"),
                   help="more arguments for one benchmark, e.g. --args api '--redis-url redis://127.0.0.1:6379/6'")
    args = p.parse_args(argv)
    extra = {name: text.split() for name, text in args.args}
    RESULTS.mkdir(parents=True, exist_ok=True)
    stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    runs: dict[str, dict] = {}
    rows: list[dict] = []
    failed = False
    for name, (script, arguments, prefix) in BENCHMARKS.items():
        if args.only and name not in args.only:
            continue
        path = BENCH / script
        if not path.exists():
            runs[name] = {"status": f"not run: no bench/{script}"}
            continue
        since = 0.0
        arguments = list(arguments) + extra.get(name, [])
        if args.database_suffix and name in DATABASES:
            arguments += ["--database", f"{DATABASES[name]}_{args.database_suffix}"]
        if not args.collect_only:
            since = time.time()
            log = RESULTS / f"{prefix}{stamp}.log"
            print(f"[bench] {name}: {script} {' '.join(arguments)} (log: {log.relative_to(REPO)})", file=sys.stderr, flush=True)
            with log.open("w") as out:
                code = subprocess.run([sys.executable, str(path), *arguments], cwd=REPO, stdout=out, stderr=subprocess.STDOUT).returncode
            if code != 0:
                failed = True
                runs[name] = {"status": f"FAILED (exit {code}; see {log.relative_to(REPO)})"}
        result = newest(prefix, since)
        if result is None:
            runs.setdefault(name, {"status": "no result"})
            continue
        data = json.loads(result.read_text())
        runs.setdefault(name, {"status": "ok"})["result"] = str(result.relative_to(REPO))
        rows += EXTRACT.get(name, lambda d, n=name: rows_generic(n, d))(data)
    table = markdown(rows, runs)
    generator = next((r.get("config", {}).get("client") for r in [_load(runs.get("api"))] if r), None)
    heading = f"## PGI benchmarks, {stamp}" + (f" (load generator: {generator})" if generator else "")
    (RESULTS / f"summary-{stamp}.md").write_text(f"{heading}\n\n{table}\n")
    (RESULTS / f"summary-{stamp}.json").write_text(json.dumps({"started": stamp, "runs": runs, "rows": rows}, indent=2) + "\n")
    print(f"\n{heading}\n\n{table}\n\nsummary: bench/results/summary-{stamp}.md and .json")
    return 1 if failed else 0


def _load(run: dict | None) -> dict | None:
    if not run or not run.get("result"):
        return None
    return json.loads((REPO / run["result"]).read_text())


if __name__ == "__main__":
    sys.exit(main())
