"""The text of ``bench/report.md``, rendered from the results document."""

from __future__ import annotations

from typing import Any

from bench.report_scale import scale_section

__all__ = ["render"]

_WORKLOADS = {
    "snapshot_1_consumer_batched": "100 KB snapshot to 1 consumer, steady load (10 browsers at once; full batches where a queue is used)",
    "snapshot_1_consumer_alone_{few}": "100 KB snapshot to 1 consumer, alone (batches of 1)",
    "snapshot_1_consumer_alone_{many}": "same, among {many:,} connections",
    "snapshot_10_consumers_batched": "100 KB snapshot to 10 consumers, steady load",
    "command_and_result": "one command and its result (with the timeout check)",
    "browser_connection_life": "one browser connection: authorize, connect, presence, disconnect",
    "keepalive_connection_hour": "one connection-hour of keep-alive (ping every 20 s)",
    "naive_snapshot_1_consumer_{few}": "naive baseline: 100 KB snapshot, {few} connections",
    "naive_snapshot_1_consumer_{many}": "naive baseline: 100 KB snapshot, {many:,} connections",
}


def _f(value: Any, digits: int = 2) -> str:
    if value is None:
        return "n/a"
    if isinstance(value, bool):
        return str(value)
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, float):
        return f"{value:,.{digits}f}"
    return str(value)


def _goals(doc: dict[str, Any]) -> list[str]:
    lines = ["| figure | goal | measured | met? |", "|---|---|---|---|"]
    for g in doc["goals"]:
        met = {True: "yes", False: "**no**", None: "not measured"}[g["met"]]
        value = _f(g["value"])
        if g["key"] == "local_p99_ms_at_200_per_s" and doc.get("local", {}).get("summary", {}).get(
            "local_p99_at_200_is_lower_bound"
        ):
            value = f">= {value} (lower bound: snapshots still undelivered at the cutoff)"
        lines.append(f"| `{g['key']}` | {g['goal']} | {value} | {met} |")
    return lines


def _cost(doc: dict[str, Any]) -> list[str]:
    cost = doc.get("cost")
    if not cost:
        return ["Not measured in this run."]
    s = cost["summary"]
    few, many = s.get("connections_measured", [10, 10_000])
    w = cost["workloads"]
    page = cost["page"]
    head = w["snapshot_1_consumer_batched"]
    lines = [
        "The real handlers run under moto with API Gateway-shaped events; botocore hooks",
        "count every AWS call by service and operation and the units AWS bills (SQS 64 KB",
        "chunks, DynamoDB request units from item sizes, API Gateway 32 KB message units,",
        "Lambda invocations). A Lambda's billed duration is modelled: its own Python time",
        "(measured, scaled to the vCPU share its memory buys: 1,769 MB = 1 vCPU) plus an",
        f"assumed in-region latency per AWS call ({', '.join(f'{k} {v:g} ms' for k, v in cost['assumptions']['latency_ms'].items())}).",
        f"Prices: us-east-1 list prices as of {cost['prices_as_of']} (`bench/prices.py`, sources below).",
        "",
        f"The page: {page['bytes']:,} bytes of generated product-listing HTML (varied markup, ids,",
        f"prices, JSON-LD), gzip ratio {page['gzip_ratio']:.1f}x, sent as {len(page['frames'])} frame(s) of",
        f"{', '.join(f'{b:,}' for b in page['frames'])} bytes; the naive client sends it plain in one",
        f"{page['uncompressed_frame_bytes']:,}-byte message (which a browser could not even send: frames over 32 KB close with 1009).",
        "",
        "| workload | US$ per million | + data transfer out | AWS calls each |",
        "|---|---|---|---|",
    ]
    for key, label in _WORKLOADS.items():
        k = key.format(few=few, many=many)
        if k not in w:
            continue
        r = w[k]
        lines.append(
            f"| {label.format(few=few, many=many)} | {_f(r['usd_per_million_total'])} | "
            f"{_f(r['usd_per_million_data_transfer_out'])} | {_f(r['per_unit']['aws_calls'], 1)} |"
        )
    lines += [
        "",
        '"Data transfer out" is what the bytes sent to clients cost at $0.09/GB on top (AWS',
        "bills WebSocket messages and, separately, data transfer out); the goal is stated without it.",
        "",
        f"**Headline** (`cost_usd_per_million_100kb_snapshot` = {_f(s['cost_usd_per_million_100kb_snapshot'])}):",
        "one 100 KB snapshot to one consumer under steady load, by bill line (US$ per million):",
        "",
        "| line | US$ per million |",
        "|---|---|",
    ]
    for line, usd in sorted(head["usd_per_million"].items(), key=lambda kv: -kv[1]):
        if usd:
            lines.append(f"| {line.replace('_', ' ')} | {_f(usd, 3)} |")
    lines += ["", "AWS calls per snapshot (steady load; fractions are shares of a batch call):", ""]
    lines += ["| call | per snapshot |", "|---|---|"]
    lines += [f"| {op} | {_f(n, 2)} |" for op, n in head["per_unit"]["calls"].items()]
    lines += [
        "",
        f"Calls per snapshot alone: {_f(s['aws_calls_per_snapshot_10_connections'], 0)} at {few} connections, "
        f"{_f(s['aws_calls_per_snapshot_10000_connections'], 0)} at {many:,} (every lookup is a key lookup). "
        f"The naive baseline: {_f(s['naive_aws_calls_per_snapshot_10_connections'], 0)} and "
        f"{_f(s['naive_aws_calls_per_snapshot_10000_connections'], 0)} calls, but its Scan reads every row: "
        f"{_f(w[f'naive_snapshot_1_consumer_{many}']['per_unit']['dynamodb_read_units'], 1)} read units per message at {many:,} connections.",
        "",
        "![cost by bill line](cost_breakdown.png)",
        "",
        "| page | gzip ratio | parts | tabrelay US$/M | naive US$/M |",
        "|---|---|---|---|---|",
    ]
    for c in cost["by_page_size"]:
        naive = (
            _f(c["naive_usd_per_million"])
            if c["naive_usd_per_million"] is not None
            else "cannot send (> 128 KB)"
        )
        lines.append(
            f"| {c['page_kb']:,} KB | {c['gzip_ratio']:.1f}x | {c['parts']} | {_f(c['usd_per_million'])} | {naive} |"
        )
    lines += [
        "",
        "![cost by page size](cost_by_page_size.png)",
        "",
        "Fixed costs not in the per-message figures: Lambda's SQS pollers long-poll each",
        "queue even when idle (empty receives are billed: a few hundred thousand a month",
        "per queue, cents), the Secrets Manager read of the signing key (cached 5 min per",
        "container), CloudWatch logs and metrics.",
        "",
        "Prices used:",
        "",
        "| unit | US$ | source |",
        "|---|---|---|",
    ]
    for p in cost["prices"].values():
        usd = p["usd"] * 1e6 if p["usd"] < 1e-3 and "GB-second" not in p["per"] else p["usd"]
        per = "per million" if p["usd"] < 1e-3 and "GB-second" not in p["per"] else "each"
        lines.append(f"| {p['per']} | {usd:g} {per} | {p['source']} |")
    return lines


def _ratio(sample: dict[str, Any] | None, base: float | None) -> str:
    return f"{sample['median_s'] / base:.2f}x" if sample and base else "n/a"


def _coldstart(doc: dict[str, Any]) -> list[str]:
    cold = doc.get("coldstart")
    if not cold:
        return ["Not measured in this run."]
    lines = [
        f"Each import timed in a fresh interpreter (Python {cold['python']} here; Lambda runs 3.14),",
        f"median of {cold['rounds']} interleaved rounds, same run for all:",
        "",
        "| module | venv (ms) | ratio vs boto3 | from the asset, no bytecode (ms) | ratio "
        "| import + first-invocation build (ms) | ratio |",
        "|---|---|---|---|---|---|---|",
    ]
    first = cold.get("first_invocation", {})
    before = cold.get("before")
    base = cold["venv"]["boto3"]["median_s"]
    # The first-invocation part times its own boto3 baseline in its rounds (older runs did not).
    first_base = first.get("boto3", {}).get("median_s", base)
    for module, v in cold["venv"].items():
        name = module.removeprefix("functions.handlers.")
        asset = cold.get("asset", {}).get(module)
        asset_base = cold.get("asset", {}).get("boto3", {}).get("median_s")
        lines.append(
            f"| {name} | {v['median_s'] * 1000:.0f} | {v['median_s'] / base:.2f}x | "
            f"{_f(asset['median_s'] * 1000, 0) if asset else 'n/a'} | "
            f"{_ratio(asset, asset_base)} | "
            f"{_f(first[name]['median_s'] * 1000, 0) if name in first else 'n/a'} | "
            f"{_ratio(first.get(name), first_base)} |"
        )
    for label, earlier in (("Before issue 12", before), ("Before", cold.get("previous"))):
        if not earlier:
            continue
        lines += [
            "",
            f"{label} ({earlier['what']}): slowest handler {earlier['import_ratio']:.2f}x "
            f"boto3 in the venv, {earlier['asset_ratio']:.2f}x from the asset, "
            f"{earlier['first_invocation_ratio']:.2f}x with the first invocation's build; "
            f"asset {earlier['asset_unzipped_mb']:.1f} MB unzipped.",
        ]
    breakdown = cold.get("message_import_breakdown_ms", {})
    top = list(breakdown.items())[:8]
    lines += [
        "",
        "Where the message handler's import goes (`-X importtime` self time per top-level package, ms):",
        "",
        ", ".join(f"{name} {ms:.0f}" for name, ms in top) + ".",
        "",
        "The first-invocation column is one fresh interpreter from the import to the end of",
        "the handler's first invocation (a browser's life: authorize, connect, a snapshot,",
        "a command routed, its timeout, disconnect) against a local moto server, less the",
        "time inside the AWS calls themselves (`bench/firstcall.py`): it counts the boto3",
        "clients, adapters, idempotency layer and secrets provider that handlers build on",
        "first use, so lazy building cannot hide cost by moving it out of the import.",
        "Its ratio is against a bare `import boto3` in the venv timed in the same rounds",
        "(interleaved with the handlers, as the imports are), so load that drifts during",
        "the run hits both alike.",
        "",
        "![cold start](coldstart.png)",
    ]
    assets = cold.get("assets")
    if assets:
        lines += [
            "",
            "| deployment asset | unzipped | zipped | largest entries |",
            "|---|---|---|---|",
        ]
        users: dict[str, list[str]] = {}
        for handler, asset in assets["functions"].items():
            users.setdefault(asset, []).append(handler.split(".")[2])
        for asset, a in assets["assets"].items():
            largest = ", ".join(f"{e['name']} {e['bytes'] / 1e6:.1f} MB" for e in a["largest"][:4])
            lines.append(
                f"| {asset[:18]}… ({', '.join(users.get(asset, []))}) | {a['unzipped_bytes'] / 1e6:.1f} MB | "
                f"{a['zipped_bytes'] / 1e6:.1f} MB | {largest} |"
            )
    return lines


def _local(doc: dict[str, Any]) -> list[str]:
    local = doc.get("local")
    if not local:
        return ["Not measured in this run."]
    c = local["config"]
    lines = [
        f"{c['browsers']} browsers x {c['consumers']} consumers (one tenant; every consumer receives",
        f"every browser), {c['snapshot_kb']} KB HTML snapshots sent by the Python client at fixed",
        f"offered rates for {c['seconds']} s each (open loop: latency counts from the scheduled send",
        "time, so a stalled sender cannot hide delay), measured at every consumer. The",
        "direct relay is the seed's design in a process of its own (bounded queue per connection,",
        "reader/writer tasks, no bus, no Lambda, no moto): this machine's ceiling for the",
        "same clients and frames.",
        "",
        "| system | offered/s | delivered/s | p50 ms | p95 ms | p99 ms | lost | missed (conflated) |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for label, runs in (
        ("tabrelay (emulator)", local["gateway"]),
        ("direct relay", local["direct"]),
    ):
        for r in runs:
            lat = r["latency_ms"]
            at_least = ">= " if r.get("latency_is_lower_bound") else ""
            lines.append(
                f"| {label} | {r['offered_per_s']:g} | {r['delivered_per_s']:.1f} | {at_least}{_f(lat['p50'], 1)} | "
                f"{at_least}{_f(lat['p95'], 1)} | {at_least}{_f(lat['p99'], 1)} | {r['lost']} | {r['missed']} |"
            )
    lines += [
        "",
        '"lost": not delivered by the cutoff (end of sending + grace); they count in the',
        "percentiles with the time they had waited, so a row marked >= is a lower bound.",
        '"missed": dropped on purpose by conflation (a consumer over its window) and reported',
        'to the consumer. "delivered/s": snapshots each consumer received while sending lasted.',
        "A fresh emulator serves each rate, so one rate's backlog cannot slow the next.",
        "",
        "![local latency and throughput](local_latency.png)",
    ]
    return lines


def _capacity(doc: dict[str, Any]) -> list[str]:
    cap = doc.get("capacity")
    if not cap:
        return ["Not measured in this run."]
    s = cap["summary"]
    lines = [
        f"Connections opened against the emulator (consumers, {cap['config']['tenants']} tenants) in steps, up to",
        f"{cap['config']['target']:,}; resident memory of the emulator's processes (gateway + moto)",
        "read from /proc after each step.",
        "",
        f"- connections held: **{s['connections_held']:,}** (target {cap['config']['target']:,})",
        f"- resident memory per 1,000 connections: **{s['rss_mb_per_1000_connections']:.1f} MB**"
        f" (baseline {s['baseline_rss_mb']:.0f} MB with none)",
        f"- connections per second (each one runs the authorizer and `$connect`): **{s['connections_per_s']:.0f}**",
    ]
    if cap.get("stopped_because"):
        lines.append(f"- stopped because: {cap['stopped_because']}")
    lines += ["", "![capacity](capacity.png)"]
    return lines


def _pageview(doc: dict[str, Any]) -> list[str]:
    view = doc.get("pageview")
    if not view:
        return ["Not measured in this run."]
    c = view["config"]
    lines = [
        "The compact page view `tabrelay mcp` gives a model (`tabrelay/pageview.py`: headings,",
        "text, every link/button/field with a selector, form values) on the generated",
        f"product-listing pages, {c['seeds']} seeds per size. Text is shortened to keep the view",
        f"within {c['view_ratio_budget']:g} of the HTML (never below {c['view_min_chars']:,} characters);",
        f"controls are always kept; `get_page` cuts the view at {c['view_max_chars']:,} characters.",
        "",
        "| HTML (characters) | view (characters) | view / HTML | worst seed | ms to build |",
        "|---|---|---|---|---|",
    ]
    for r in view["pages"]:
        lines.append(
            f"| {r['html_chars']:,} | {r['view_chars_mean']:,} | {r['ratio_mean']:.3f} "
            f"| {r['ratio_max']:.3f} | {r['ms_mean']:.1f} |"
        )
    return lines


def _noisy(doc: dict[str, Any]) -> list[str]:
    noisy = doc.get("noisy")
    if not noisy:
        return ["Not measured in this run."]
    c, s = noisy["config"], noisy["summary"]
    return [
        f"The emulator (`make run`, its own process). Tenant A: {c['storm_browsers']} browsers",
        f"and {c['storm_consumers']} consumers following `*`; tenant B: one browser answering",
        f"at once and one consumer running {c['round_trips_per_phase']} command round trips one",
        "after the other, first with A idle, then while every A browser drops and reconnects",
        "at once (presence to every A consumer). Commands and results travel on their own lane",
        "(queue and function), so B's commands never wait behind A's presence on the bus; on one",
        "machine they still share its CPUs with A's storm.",
        "",
        "| B's command round trip | quiet | during A's storm |",
        "|---|---|---|",
        f"| p50 (ms) | {_f(s['noisy_b_p50_ms_quiet'], 1)} | {_f(s['noisy_b_p50_ms_storm'], 1)} |",
        f"| p99 (ms) | {_f(s['noisy_b_p99_ms_quiet'], 1)} | {_f(s['noisy_b_p99_ms_storm'], 1)} |",
        "",
        f"- storm p99 / quiet p99: **{_f(s['noisy_ratio'])}** (goal: at most 2)",
        f"- B's results arrived in the order sent: {s['noisy_b_in_order']}; B was done while A's"
        f" presence was still on its way: {s['noisy_a_pending_when_b_done']}; every A consumer"
        f" then saw every A browser back online: {s['noisy_a_settled']}"
        f" ({s['noisy_a_presence_notes']:,} presence notes)",
    ]


def render(doc: dict[str, Any]) -> str:
    m = doc["machine"]
    lines = [
        "# tabrelay benchmarks",
        "",
        f"Measured {doc['date']} on {m['cpus']} CPUs ({m['cpu_model']}), {m['memory_gb']} GB,",
        f"Python {m['python']}, {m['platform']}. Written by `make bench` (`python -m bench`);",
        "every comparison below comes from this same run.",
    ]
    if doc.get("quick"):
        lines += [
            "",
            "**Quick run** (`--quick`): small sizes for the smoke tests; not the real figures.",
        ]
    if doc.get("errors"):
        lines += [
            "",
            "**Parts that failed:** " + "; ".join(f"{k}: {v}" for k, v in doc["errors"].items()),
        ]
    lines += ["", "## Goals (issue 7)", "", *_goals(doc)]
    lines += ["", "## 1. Cost per million messages", "", *_cost(doc)]
    lines += ["", "## 2. Local end to end", "", *_local(doc)]
    lines += ["", "## 3. Connection capacity (local emulator)", "", *_capacity(doc)]
    lines += ["", "## 4. Cold start", "", *_coldstart(doc)]
    lines += ["", "## 5. MCP: the compact page view", "", *_pageview(doc)]
    lines += ["", "## 6. Scale model: 1,000 to 1,000,000 connections (issue 11)", ""]
    lines += scale_section(doc)
    lines += ["", "## 7. Noisy neighbour (issue 11, part 3)", "", *_noisy(doc)]
    lines += [
        "",
        "## Run",
        "",
        "Seconds per part: "
        + ", ".join(f"{k} {v:g}" for k, v in doc.get("durations_s", {}).items())
        + ".",
        "",
    ]
    return "\n".join(lines)
