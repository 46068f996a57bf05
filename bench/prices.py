"""The one price table of the cost model: public us-east-1 list prices, with sources.

Every dollar figure in ``bench/report.md`` is computed from :data:`PRICES` and
:data:`ASSUMPTIONS`, nowhere else. Prices were read on the date in
:data:`PRICES_AS_OF` (from /work/shared/AWS-FACTS.md, which checked them against
AWS's pricing pages and third-party copies of them); change them here and the
report follows. Free tiers are ignored: a million messages is beyond them.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = [
    "ASSUMPTIONS",
    "LAMBDA_MEMORY_MB",
    "PRICES",
    "PRICES_AS_OF",
    "Assumptions",
    "Price",
]

PRICES_AS_OF = "2026-11-25"


@dataclass(frozen=True, slots=True)
class Price:
    """One metered unit and what a million of them (or one, see ``per``) cost."""

    usd: float
    per: str
    source: str


PRICES: dict[str, Price] = {
    "apigw_message": Price(
        1.00 / 1e6,
        "WebSocket message, metered in 32 KB increments (first billion per month)",
        "https://aws.amazon.com/api-gateway/pricing/",
    ),
    "apigw_connection_minute": Price(
        0.25 / 1e6,
        "WebSocket connection-minute",
        "https://aws.amazon.com/api-gateway/pricing/",
    ),
    "lambda_request": Price(
        0.20 / 1e6,
        "Lambda invocation",
        "https://aws.amazon.com/lambda/pricing/",
    ),
    "lambda_gb_second_arm64": Price(
        0.0000133334,
        "Lambda GB-second, arm64 (the stack's architecture)",
        "https://aws.amazon.com/lambda/pricing/",
    ),
    "sqs_request": Price(
        0.40 / 1e6,
        "SQS standard request, each 64 KB chunk of payload billed as one",
        "https://aws.amazon.com/sqs/pricing/",
    ),
    "dynamodb_write_unit": Price(
        0.625 / 1e6,
        "DynamoDB on-demand write request unit (1 KB)",
        "https://aws.amazon.com/dynamodb/pricing/on-demand/",
    ),
    "dynamodb_read_unit": Price(
        0.125 / 1e6,
        "DynamoDB on-demand read request unit (4 KB strongly consistent, 8 KB eventually)",
        "https://aws.amazon.com/dynamodb/pricing/on-demand/",
    ),
    "xray_trace_recorded": Price(
        5.00 / 1e6,
        "X-Ray trace recorded (beyond the free tier of 100,000 a month)",
        "https://aws.amazon.com/xray/pricing/",
    ),
    "data_transfer_out_gb": Price(
        0.09,
        "data transfer out to the internet, per GB (first 10 TB per month, EC2 rates)",
        "https://aws.amazon.com/ec2/pricing/on-demand/#Data_Transfer",
    ),
}

# Memory of each function, as infra/components/functions.py sizes them
# (tests/bench/test_cost.py checks the two agree once infra/ is importable).
LAMBDA_MEMORY_MB: dict[str, int] = {
    "authorizer": 256,
    "connect": 256,
    "disconnect": 256,
    "message": 512,
    "router": 512,
    "commands": 512,
    "delivery": 512,
    # The naive baseline runs as one message function sized like ours.
    "naive": 512,
}


@dataclass(frozen=True, slots=True)
class Assumptions:
    """What the model cannot measure under moto, stated once.

    Latencies are typical in-region round trips for small requests (not
    published prices): a Lambda's billed duration is its own measured Python
    time plus these waits for each AWS call it makes.
    """

    latency_ms: dict[str, float]
    scan_ms_per_mb: float
    keepalive_interval_s: float
    router_batch_size: int


ASSUMPTIONS = Assumptions(
    latency_ms={"dynamodb": 5.0, "sqs": 8.0, "apigatewaymanagementapi": 15.0},
    # A Scan page (1 MB) takes far longer than a key lookup to read and ship.
    scan_ms_per_mb=60.0,
    keepalive_interval_s=20.0,
    router_batch_size=10,
)
