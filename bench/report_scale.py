"""The scale model's section of ``bench/report.md`` and its plots (part ``scale``)."""

from __future__ import annotations

from typing import Any

__all__ = ["scale_plots", "scale_section"]

_KIND = {"hard": "hard (AWS, fixed)", "soft": "soft (AWS quota)", "stack": "stack setting"}


def _n(value: float | None, digits: int = 0) -> str:
    if value is None:
        return "n/a"
    return f"{value:,.{digits}f}"


def _at(crossing: dict[str, Any]) -> str:
    if crossing.get("at") is None:
        return "not below 100,000,000"
    if crossing.get("already"):
        return f"already at {crossing['at']:,} (the sweep's start)"
    return f"{crossing['at']:,}"


def _workloads(scale: dict[str, Any]) -> list[str]:
    d = scale["client_defaults"]
    lines = ["| workload | definition |", "|---|---|"]
    for name, w in scale["workload_definitions"].items():
        lines.append(f"| {name} {w['title']} | {w['description']} |")
    lines += [
        "",
        "Clients at their shipped defaults, read from the clients (`bench/workloads.py`):",
        "the Python consumer sends a one-way `keepalive` after "
        f"{d['python_keepalive_interval_s']:g} s without sending and a `ping` after "
        f"{d['python_ping_interval_s']:g} s without receiving, and acks after "
        f"{d['python_ack_every']} deliveries or {d['python_ack_delay_s']:g} s (its own `AckTracker`",
        f"run over the workload's delivery times: {scale['default_client']['acks_per_snapshot']:g} ack per",
        "delivery at one snapshot per 10 s); the extension keeps alive after "
        f"{d['extension_keepalive_interval_s']:g} s without sending and pings after "
        f"{d['extension_ping_interval_s']:g} s without receiving (both run through the client's",
        "own `KeepAlive` over each connection's traffic: a busy connection sends none). Every",
        "keepalive, ping and pong is a billed message and a request against the account quota.",
        "Every connection reconnects once per lifetime: the clients plan a reconnect at a moment",
        f"drawn uniformly from their window before API Gateway's 2-h cut, {scale['connection_lifetime_s']:,.0f} s",
        f"on average: N / {scale['connection_lifetime_s']:,.0f} new connections per second, spread out.",
    ]
    return lines


def _operations(scale: dict[str, Any]) -> list[str]:
    lines = [
        f"Measured through the real handlers under moto ({scale['samples']} at once, full batches "
        "where a queue is used), per operation:",
        "",
        "| operation | frames in | replies | @connections | SQS req | DynamoDB R/W units by key class "
        "| Lambda invocations (billed ms) | US$ per million |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for name, op in scale["operations"].items():
        units = ", ".join(
            f"{cls} {r:g}/{w:g}" for cls, (r, w) in op["dynamodb_units"].items() if r or w
        )
        fns = ", ".join(
            f"{fn} {v['invocations']:.2g} ({v['ms']:.0f})" for fn, v in op["lambda"].items()
        )
        lines.append(
            f"| {name} | {sum(op['frames_in'].values()):g} | {op['route_replies']:g} | "
            f"{op['management_calls']:g} | {op['sqs_requests']:.2g} | {units} | {fns} | "
            f"{sum(op['usd'].values()) * 1e6:.2f} |"
        )
    return lines


def _limits(scale: dict[str, Any]) -> list[str]:
    q = scale["quotas"]
    w = scale["workloads"]
    lines = [
        "| limit | kind | value | W1 reaches it at | W2 reaches it at | W1 load at 100k | source |",
        "|---|---|---|---|---|---|---|",
    ]
    for key, quota in q.items():
        load = w["W1"]["at_100k_limits"][key]
        lines.append(
            f"| {quota['label']} | {_KIND[quota['kind']]} | {quota['value']:,g} {quota['unit']} | "
            f"{_at(w['W1']['crossings'][key])} | {_at(w['W2']['crossings'][key])} | "
            f"{load:,.1f} ({load / quota['value']:.2f}x) | {quota['source']} |"
        )
    return lines


def _headroom(scale: dict[str, Any]) -> list[str]:
    lines = []
    for name in ("W1", "W2"):
        h = scale["workloads"][name]["hard_headroom_100k"]
        lines.append(
            f"- **{name} at 100k**: the tightest hard limit is `{h['limit']}`, with "
            f"**{_n(h['headroom'], 1)}x** headroom (limit over load; goal: at least 2x)."
        )
    return lines


def _firsts(scale: dict[str, Any]) -> list[str]:
    lines = []
    for name in ("W1", "W2"):
        w = scale["workloads"][name]
        parts = []
        for label, key in (
            ("hard limit", "first_hard"),
            ("AWS soft quota", "first_soft"),
            ("stack setting", "first_stack"),
        ):
            first = w[key]
            if first["at"] is None:
                parts.append(f"no {label} below 100M")
            else:
                where = "already at" if first.get("already") else "at"
                parts.append(f"{label}: `{first['limit']}` {where} {first['at']:,} connections")
        lines.append(f"- **{name}** (connections of its W1 part): " + "; ".join(parts) + ".")
    return lines


def _increases(scale: dict[str, Any]) -> list[str]:
    rows = scale["workloads"]["W1"]["increases_100k"]
    lines = [
        "| quota or setting | kind | default | W1 load at 100k | request (2x headroom) |",
        "|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r['label']} | {_KIND[r['kind']]} | {r['default']:,g} | {r['load']:,.0f} | "
            f"**{r['request']:,}** {r['unit']}{'; ' + r['how'] if r.get('how') else ''} |"
        )
    return lines


def _cost(scale: dict[str, Any]) -> list[str]:
    a = scale["workloads"]["W1"]["at_100k"]
    lines = ["| service | US$ per month |", "|---|---|"]
    for service, usd in a["monthly_usd_by_service"].items():
        lines.append(f"| {service.replace('_', ' ')} | {usd:,.0f} |")
    lines += [
        f"| **total** | **{a['monthly_usd']:,.0f}** |",
        f"| floor (API Gateway: snapshot and command messages in and out, connection minutes) "
        f"| {a['monthly_floor_usd']:,.0f} |",
        f"| data transfer out (not in the total) | {a['monthly_data_transfer_usd']:,.0f} |",
        f"| X-Ray traces (not in the total; Lambda's active tracing samples each function at "
        f"1/s + 5%: {a['traces_per_s']:,.0f} traces/s) | {a['monthly_xray_usd']:,.0f} |",
    ]
    return lines


def _storm(scale: dict[str, Any]) -> list[str]:
    s = scale["storm"]["at_100k"]
    limits = ", ".join(f"{k} {v:,g}" for k, v in s["limits_used"].items())
    return [
        f"- All {s['connections']:,.0f} connections reconnect at **{_n(s['reconnect_rate_per_s'])}/s**, "
        f"bound by `{s['bound_by']}`: recovery takes **{_n(s['recovery_s'])} s**. The stack is the "
        f"one W1 needs at this size (its increases above in place; limits used: {limits}).",
        f"- Every browser's leaving and return is a presence record on the bus: "
        f"{s['presence_records']:,.0f} records, {s['router_work_s']:,.0f} router-seconds of work "
        f"(posts to every consumer of the tenant). With {s['router_spare_concurrency']:,.1f} router "
        f"executions to spare beside W1's steady load, the backlog is worked off after "
        f"**{_n(s['presence_backlog_drained_s'])} s**.",
        f"- **Another tenant's command waits {_n(s['other_tenant_command_wait_s'])} s** behind "
        "that backlog: commands and results travel on their own lane (queue, `commands` function, "
        f"event source with {s['command_lane_spare_concurrency']:,.1f} concurrent batches to spare "
        "beside W1's steady commands), never behind presence or fan-out. The emulator's "
        "noisy-neighbour test and bench part (section 7) show the same on one machine.",
        "- It does not repeat every 2 hours: the clients' planned reconnects are spread over a "
        "10-minute window before API Gateway's cut, and reconnects after a drop use full jitter.",
    ]


def _headline(scale: dict[str, Any]) -> list[str]:
    h = scale["default_client"]
    return [
        f"`cost_usd_per_million_100kb_snapshot_default_client` = **${h['total']:.2f}**: the snapshot "
        f"with acks negotiated ${h['snapshot']:.2f}, the consumer's acks "
        f"({h['acks_per_snapshot']:g} per snapshot) ${h['acks']:.2f}, the Python consumer's "
        f"keep-alive ({h['pings_per_snapshot']:g} messages per snapshot) ${h['keepalive']:.2f}. "
        f"The extension's own keep-alive adds ${h['extension_keepalive']:.2f} more per pair "
        "(not in the figure).",
    ]


def scale_section(doc: dict[str, Any]) -> list[str]:
    """The report's text for the scale part."""
    scale = doc.get("scale")
    if not scale:
        return ["Not measured in this run."]
    s = scale["summary"]
    frame = scale["frame_bytes"]
    lines = [
        "**State before issue 11's design changes.** A quota-aware model of the deployed stack",
        "(`bench/scale.py`): the operations of three reference workloads run once through the",
        "real handlers under moto, metered with botocore hooks (DynamoDB units by partition key",
        "class, SQS requests, `@connections` calls, API Gateway frames and 32 KB units, Lambda",
        "invocations and modelled billed durations, as in part 1); the workloads' rates times",
        "those counts give the load on every limit and the bill at any size. Only prices",
        "(`bench/prices.py`) and quotas (`bench/quotas.py`, sources in the limits table) are typed in.",
        "",
        *_workloads(scale),
        "",
        "### First limits",
        "",
        *_firsts(scale),
        "",
        *_headroom(scale),
        "",
        f"Summary: `scale_connections_before_first_hard_limit` = {_n(s['scale_connections_before_first_hard_limit'])}"
        f"{' (the search bound: no hard limit below it)' if scale['workloads']['W1']['first_hard']['at'] is None else ''}, "
        f"`scale_connections_before_first_quota_default` = {_n(s['scale_connections_before_first_quota_default'])} (W1; "
        "the first soft limit of either kind, AWS quota or stack setting, at its default).",
        "",
        *_limits(scale),
        "",
        "![load against each limit](scale_limits.png)",
        "",
        "### What W1 needs at 100,000 connections",
        "",
        "Quota increases and settings (everything whose load is over half its limit):",
        "",
        *_increases(scale),
        "",
        f"Hottest DynamoDB partitions at 100k (W1): reads `{scale['workloads']['W1']['at_100k']['hottest_rcu']['partition']}` "
        f"{scale['workloads']['W1']['at_100k']['hottest_rcu']['units_per_s']:,.1f} RCU/s, writes "
        f"`{scale['workloads']['W1']['at_100k']['hottest_wcu']['partition']}` "
        f"{scale['workloads']['W1']['at_100k']['hottest_wcu']['units_per_s']:,.1f} WCU/s "
        "(hard limits: no quota request raises them). Table totals: "
        f"{scale['workloads']['W1']['at_100k']['dynamodb_table_units_per_s'][0]:,.0f} RCU/s, "
        f"{scale['workloads']['W1']['at_100k']['dynamodb_table_units_per_s'][1]:,.0f} WCU/s.",
        "",
        "Monthly bill at 100k (W1, us-east-1 list prices, first-tier API Gateway price):",
        "",
        *_cost(scale),
        "",
        "![monthly cost by service](scale_cost.png)",
        "",
        "### W2: the big tenant",
        "",
        f"Busiest connection: `{scale['workloads']['W2']['at_100k']['busiest_connection']['who']}` "
        f"sends {scale['workloads']['W2']['at_100k']['busiest_connection']['messages_per_s']:,.1f} "
        "messages/s (acks for 1,000 deliveries/s); hottest partitions at W1 100k + the big tenant: "
        f"reads `{scale['workloads']['W2']['at_100k']['hottest_rcu']['partition']}` "
        f"{scale['workloads']['W2']['at_100k']['hottest_rcu']['units_per_s']:,.0f} RCU/s, writes "
        f"`{scale['workloads']['W2']['at_100k']['hottest_wcu']['partition']}` "
        f"{scale['workloads']['W2']['at_100k']['hottest_wcu']['units_per_s']:,.0f} WCU/s.",
        "Per partition (RCU/s, WCU/s) at W1 100k + the big tenant:",
        "",
        ", ".join(
            f"`{k}` {r:,.1f}/{w:,.1f}"
            for k, (r, w) in scale["workloads"]["W2"]["at_100k"]["dynamodb_partitions"].items()
        )
        + ".",
        "",
        "### W3: the storm at 100,000 connections",
        "",
        *_storm(scale),
        "",
        "### The headline with the shipped clients",
        "",
        *_headline(scale),
        "",
        f"Largest frame of a 100 KB page: {frame['largest']:,} bytes of {frame['limit']:,} "
        f"({frame['headroom']:.2f}x headroom; independent of the number of connections).",
        "",
        "### Operations measured",
        "",
        *_operations(scale),
        "",
        "Model assumptions: queues run full batches (steady load); per-partition load is a key",
        "class's units spread evenly over its owners within a segment (one partition key value",
        "= one partition); billed durations are this machine's Python time scaled to the",
        "function's vCPU share plus an assumed latency per AWS call (part 1); the rate limiter's",
        "counter writes (one per 5 messages in a second) are not in the counts, since each",
        "operation is measured one frame per connection (they matter only to W2's consumers,",
        "which exceed the per-connection rate limit anyway); whether API Gateway bills an",
        "empty route response per message (route responses are configured on every message",
        "route) is unverified and not counted.",
    ]
    return lines


def scale_plots(plt: Any, scale: dict[str, Any]) -> list[tuple[str, Any]]:
    """(file name, figure) for each plot of the part."""
    quotas = scale["quotas"]
    fig, axes = plt.subplots(1, 2, figsize=(12, 4.8), sharey=True)
    for ax, name in zip(axes, ("W1", "W2"), strict=True):
        sweep = scale["workloads"][name]["sweep"]
        xs = [row["connections"] for row in sweep]
        for i, (key, quota) in enumerate(quotas.items()):
            style = {"hard": "-", "soft": "--", "stack": ":"}[quota["kind"]]
            ratios = [max(row["ratios"][key], 1e-4) for row in sweep]
            ax.plot(xs, ratios, style, color=plt.get_cmap("tab20")(i), label=key)
        ax.axhline(1.0, color="red", linewidth=1)
        ax.axhline(0.5, color="orange", linewidth=1, linestyle="--")
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel("connections")
        ax.set_title(f"{name}: load / limit (red: the limit; orange: 2x headroom)")
    axes[0].set_ylabel("load / limit")
    axes[1].legend(fontsize=7, loc="lower right", title="- hard, -- AWS quota, : stack")
    plots = [("scale_limits.png", fig)]

    fig, ax = plt.subplots(figsize=(8, 4.5))
    sweep = scale["workloads"]["W1"]["sweep"]
    xs = [row["connections"] for row in sweep]
    bottoms = [0.0] * len(xs)
    for service in sweep[0]["monthly_usd_by_service"]:
        values = [row["monthly_usd_by_service"][service] for row in sweep]
        ax.fill_between(
            xs,
            bottoms,
            [b + v for b, v in zip(bottoms, values, strict=True)],
            label=service.replace("_", " "),
        )
        bottoms = [b + v for b, v in zip(bottoms, values, strict=True)]
    ax.plot(xs, [row["monthly_floor_usd"] for row in sweep], "k--", label="floor")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("connections (W1)")
    ax.set_ylabel("US$ per month")
    ax.set_title("W1 monthly cost by service")
    ax.legend(fontsize=8)
    plots.append(("scale_cost.png", fig))
    return plots
