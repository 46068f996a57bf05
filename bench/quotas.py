"""The limits of the scale model, each with its kind and its source.

* ``hard``: fixed by AWS, no request raises them (a breach drops or throttles work).
* ``soft``: AWS quotas at their defaults; raisable through Service Quotas.
* ``stack``: our own settings as deployed (``infra/config.py`` defaults, read
  from :class:`infra.config.StackSettings`, never copied here); raisable by a
  context value and a deploy.

Quota values are the defaults in us-east-1 as AWS documents them (checked in
/work/shared/AWS-FACTS.md, Nov 2026); prices are in :mod:`bench.prices`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from infra.config import StackSettings

__all__ = ["MAX_CONNECTION_S", "MESSAGE_FRAME_BYTES", "QUOTAS", "Quota"]


@dataclass(frozen=True, slots=True)
class Quota:
    """One limit: its value, unit, kind and where the value comes from."""

    key: str
    label: str
    value: float
    unit: str
    kind: Literal["hard", "soft", "stack"]
    source: str


_APIGW_QUOTAS = "https://docs.aws.amazon.com/apigateway/latest/developerguide/limits.html"
_WS_QUOTAS = (
    "https://docs.aws.amazon.com/apigateway/latest/developerguide/"
    "apigateway-execution-service-websocket-limits-table.html"
)
_LAMBDA_QUOTAS = "https://docs.aws.amazon.com/lambda/latest/dg/gettingstarted-limits.html"
_LAMBDA_CONCURRENCY = "https://docs.aws.amazon.com/lambda/latest/dg/lambda-concurrency.html"
_DDB_PARTITIONS = (
    "https://docs.aws.amazon.com/amazondynamodb/latest/developerguide/bp-partition-key-design.html"
)
_DDB_ON_DEMAND = (
    "https://docs.aws.amazon.com/amazondynamodb/latest/developerguide/"
    "on-demand-capacity-mode-max-throughput.html"
)

#: API Gateway closes a WebSocket connection after this long (fixed, WebSocket quotas).
MAX_CONNECTION_S = 2 * 3600
#: The largest WebSocket frame API Gateway accepts (fixed; larger closes with 1009).
MESSAGE_FRAME_BYTES = 32 * 1024

_STACK = StackSettings()
_CONFIG = "infra/config.py (StackSettings default)"
_LAMBDA_CONCURRENCY_DEFAULT = 1_000

QUOTAS: dict[str, Quota] = {
    q.key: q
    for q in (
        Quota("dynamodb_partition_rcu", "DynamoDB read units/s on one partition", 3_000,
              "RCU/s", "hard", _DDB_PARTITIONS),
        Quota("dynamodb_partition_wcu", "DynamoDB write units/s on one partition", 1_000,
              "WCU/s", "hard", _DDB_PARTITIONS),
        Quota("dynamodb_table_rcu", "DynamoDB read units/s on one on-demand table",
              40_000, "RCU/s", "soft", _DDB_ON_DEMAND),
        Quota("dynamodb_table_wcu", "DynamoDB write units/s on one on-demand table",
              40_000, "WCU/s", "soft", _DDB_ON_DEMAND),
        Quota("apigw_account_rps", "API Gateway requests/s per account and Region "
              "(messages in and out, @connections calls)", 10_000, "requests/s", "soft",
              _APIGW_QUOTAS),
        Quota("apigw_new_connections", "WebSocket new connections/s per account and Region",
              500, "connections/s", "soft", _WS_QUOTAS),
        Quota("lambda_concurrency", "Lambda concurrent executions per account and Region",
              _LAMBDA_CONCURRENCY_DEFAULT, "concurrent executions", "soft", _LAMBDA_QUOTAS),
        Quota("lambda_rps", "Lambda invocations/s per account and Region (10 x the "
              "concurrency quota)", 10 * _LAMBDA_CONCURRENCY_DEFAULT, "invocations/s", "soft",
              _LAMBDA_CONCURRENCY),
        Quota("stage_throttle_rate", "API Gateway stage throttle (requests/s into the stage)",
              _STACK.throttle_rate_limit, "requests/s", "stack", _CONFIG),
        Quota("router_max_concurrency", "router event source: concurrent batches",
              _STACK.router_max_concurrency, "concurrent executions", "stack", _CONFIG),
        Quota("commands_max_concurrency", "command lane event source: concurrent batches",
              _STACK.commands_max_concurrency, "concurrent executions", "stack", _CONFIG),
        Quota("delivery_max_concurrency", "delivery event source: concurrent batches",
              _STACK.delivery_max_concurrency, "concurrent executions", "stack", _CONFIG),
        Quota("connection_rate_limit", "inbound messages/s per connection (rate limiter)",
              _STACK.rate_limit_per_second, "messages/s", "stack", _CONFIG),
    )
}  # fmt: skip
