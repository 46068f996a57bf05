"""Meter the AWS usage of real handler code: calls, billed units, modelled duration.

Hooks into botocore's event system on the clients the handlers use (the same
idea as the call counter of ``tests/integration/test_delivery.py``), and adds
what a bill needs: SQS 64 KB chunks, DynamoDB request units estimated from
item sizes, API Gateway's 32 KB message units and bytes sent to clients, and
per-function invocations with a modelled billed duration (own Python time,
scaled to the function's share of a vCPU, plus an assumed in-region latency
for each AWS call it makes). Single-threaded use only.
"""

from __future__ import annotations

import math
import re
import time
from collections import Counter, defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from bench.prices import ASSUMPTIONS, LAMBDA_MEMORY_MB, PRICES

__all__ = [
    "APIGW_UNIT",
    "LAMBDA_VCPU_MB",
    "SQS_CHUNK",
    "AwsMeter",
    "MeteredHandler",
    "Usage",
    "apigw_units",
    "item_size",
    "partition_units",
]

APIGW_UNIT = 32 * 1024
SQS_CHUNK = 64 * 1024
LAMBDA_VCPU_MB = 1769  # Lambda gives one full vCPU at 1,769 MB, proportionally less below


def apigw_units(size: int) -> int:
    """API Gateway WebSocket messages billed for ``size`` bytes (32 KB increments)."""
    return max(1, math.ceil(size / APIGW_UNIT))


def _value_size(value: dict[str, Any]) -> int:
    kind, inner = next(iter(value.items()))
    if kind in ("S", "B"):
        return len(inner.encode() if isinstance(inner, str) else inner)
    if kind == "N":
        return len(str(inner)) // 2 + 2
    if kind in ("BOOL", "NULL"):
        return 1
    if kind == "M":
        return 3 + sum(len(k.encode()) + _value_size(v) + 1 for k, v in inner.items())
    if kind == "L":
        return 3 + sum(_value_size(v) + 1 for v in inner)
    if kind in ("SS", "NS", "BS"):
        return sum(len(str(v)) for v in inner)
    return len(str(inner))


def item_size(item: dict[str, Any]) -> int:
    """DynamoDB's size of an item: attribute names plus values (documented rules, approximated)."""
    return sum(len(name.encode()) + _value_size(value) for name, value in item.items())


@dataclass
class Usage:
    """What a stretch of work used, in billable units."""

    calls: Counter[str] = field(default_factory=Counter)
    sqs_requests: float = 0.0
    read_units: float = 0.0
    write_units: float = 0.0
    apigw_messages_in: int = 0
    apigw_messages_out: int = 0
    apigw_connection_minutes: float = 0.0
    bytes_to_clients: int = 0
    invocations: Counter[str] = field(default_factory=Counter)
    billed_ms: dict[str, float] = field(default_factory=lambda: defaultdict(float))
    #: DynamoDB units by partition key value: pk -> [read units, write units].
    partitions: dict[str, list[float]] = field(
        default_factory=lambda: defaultdict(lambda: [0.0, 0.0])
    )

    def scaled(self, factor: float) -> dict[str, Any]:
        """This usage times ``factor`` (e.g. 1/n for "per snapshot"), as plain data."""
        return {
            "calls": {k: v * factor for k, v in sorted(self.calls.items())},
            "aws_calls": sum(self.calls.values()) * factor,
            "sqs_requests": self.sqs_requests * factor,
            "dynamodb_read_units": self.read_units * factor,
            "dynamodb_write_units": self.write_units * factor,
            "apigw_messages_in": self.apigw_messages_in * factor,
            "apigw_messages_out": self.apigw_messages_out * factor,
            "apigw_connection_minutes": self.apigw_connection_minutes * factor,
            "bytes_to_clients": self.bytes_to_clients * factor,
            "lambda_invocations": {k: v * factor for k, v in sorted(self.invocations.items())},
            "lambda_billed_ms": {k: v * factor for k, v in sorted(self.billed_ms.items())},
        }

    def dollars(self) -> dict[str, float]:
        """The bill of this usage, by line, in US dollars (see :mod:`bench.prices`)."""
        gb_seconds = sum(
            ms / 1000 * LAMBDA_MEMORY_MB[name] / 1024 for name, ms in self.billed_ms.items()
        )
        return {
            "api_gateway_messages": (self.apigw_messages_in + self.apigw_messages_out)
            * PRICES["apigw_message"].usd,
            "api_gateway_connection_minutes": self.apigw_connection_minutes
            * PRICES["apigw_connection_minute"].usd,
            "lambda_requests": sum(self.invocations.values()) * PRICES["lambda_request"].usd,
            "lambda_duration": gb_seconds * PRICES["lambda_gb_second_arm64"].usd,
            "sqs": self.sqs_requests * PRICES["sqs_request"].usd,
            "dynamodb_reads": self.read_units * PRICES["dynamodb_read_unit"].usd,
            "dynamodb_writes": self.write_units * PRICES["dynamodb_write_unit"].usd,
        }

    def data_transfer_dollars(self) -> float:
        """Bytes sent to clients over the internet, billed at data-transfer-out rates."""
        return self.bytes_to_clients / 1e9 * PRICES["data_transfer_out_gb"].usd


class AwsMeter:
    """Counts what the given boto3 clients do, from now until :meth:`take`."""

    def __init__(self, clients: list[Any]) -> None:
        self.usage = Usage()
        self.call_seconds = 0.0  # wall time inside AWS calls (moto here), excluded from own time
        self.modelled_latency_ms = 0.0  # what those calls would wait in AWS
        self._pending: tuple[dict[str, Any], float] | None = None
        for client in clients:
            client.meta.events.register("before-parameter-build.*.*", self._before)
            client.meta.events.register("after-call.*.*", self._after)

    def take(self) -> Usage:
        """The usage so far; starts a new count."""
        usage, self.usage = self.usage, Usage()
        return usage

    def add_call(self, service: str, operation: str, *, sqs_requests: float = 0.0) -> None:
        """Count a call made on the functions' behalf outside the metered clients."""
        self.usage.calls[f"{service}.{operation}"] += 1
        self.usage.sqs_requests += sqs_requests

    def _before(self, params: dict[str, Any], **_: Any) -> None:
        self._pending = (dict(params), time.perf_counter())

    def _after(self, model: Any, parsed: dict[str, Any], **_: Any) -> None:
        params, started = self._pending or ({}, time.perf_counter())
        self._pending = None
        self.call_seconds += time.perf_counter() - started
        service = model.service_model.service_name
        operation = model.name
        self.usage.calls[f"{service}.{operation}"] += 1
        latency = ASSUMPTIONS.latency_ms.get(service, 10.0)
        if service == "sqs":
            self.usage.sqs_requests += _sqs_chunks(operation, params, parsed)
        elif service == "dynamodb":
            reads, writes, scanned = _dynamodb_units(operation, params, parsed)
            self.usage.read_units += reads
            self.usage.write_units += writes
            for pk, r, w in partition_units(operation, params, parsed):
                self.usage.partitions[pk][0] += r
                self.usage.partitions[pk][1] += w
            latency += scanned / 1e6 * ASSUMPTIONS.scan_ms_per_mb
        elif service == "apigatewaymanagementapi" and operation == "PostToConnection":
            size = len(params.get("Data", b""))
            self.usage.apigw_messages_out += apigw_units(size)
            self.usage.bytes_to_clients += size
        self.modelled_latency_ms += latency


def _sqs_chunks(operation: str, params: dict[str, Any], parsed: dict[str, Any]) -> float:
    if operation == "SendMessage":
        size = len(str(params.get("MessageBody", "")).encode())
    elif operation == "SendMessageBatch":
        size = sum(len(str(e.get("MessageBody", "")).encode()) for e in params.get("Entries", []))
    elif operation == "ReceiveMessage":
        size = sum(len(m.get("Body", "").encode()) for m in parsed.get("Messages", []))
    else:
        return 1.0
    return float(max(1, math.ceil(size / SQS_CHUNK)))


def _read_units(size: int, consistent: bool) -> float:
    units = max(1, math.ceil(size / 4096))
    return float(units) if consistent else units / 2


def _dynamodb_units(
    operation: str, params: dict[str, Any], parsed: dict[str, Any]
) -> tuple[float, float, int]:
    """(read units, write units, bytes scanned) of one call; items under 1 KB per update."""
    consistent = bool(params.get("ConsistentRead"))
    if operation == "GetItem":
        return _read_units(item_size(parsed.get("Item", {})), consistent), 0.0, 0
    if operation in ("Query", "Scan"):
        size = sum(item_size(i) for i in parsed.get("Items", []))
        return _read_units(size, consistent), 0.0, size if operation == "Scan" else 0
    if operation == "PutItem":
        return 0.0, float(max(1, math.ceil(item_size(params.get("Item", {})) / 1024))), 0
    if operation in ("UpdateItem", "DeleteItem"):
        return 0.0, 1.0, 0
    if operation == "BatchWriteItem":
        writes = 0.0
        for requests in params.get("RequestItems", {}).values():
            for request in requests:
                item = request.get("PutRequest", {}).get("Item")
                writes += max(1, math.ceil(item_size(item) / 1024)) if item else 1
        return 0.0, writes, 0
    if operation == "TransactWriteItems":
        return 0.0, 2.0 * len(params.get("TransactItems", [])), 0
    if operation == "BatchGetItem":
        size = sum(item_size(i) for items in parsed.get("Responses", {}).values() for i in items)
        return _read_units(size, consistent), 0.0, 0
    return 0.0, 0.0, 0


_PK_CONDITION = re.compile(r"\bpk\s*=\s*(:\w+)")


def _pk(key: dict[str, Any] | None) -> str:
    return str((key or {}).get("pk", {}).get("S", "?"))


def _write_units(item: dict[str, Any] | None) -> float:
    return float(max(1, math.ceil(item_size(item) / 1024))) if item else 1.0


def partition_units(
    operation: str, params: dict[str, Any], parsed: dict[str, Any]
) -> list[tuple[str, float, float]]:
    """(partition key, read units, write units) of one DynamoDB call, split by the
    partition each unit lands on (the same unit rules as the totals), so the
    hottest partition can be found."""
    consistent = bool(params.get("ConsistentRead"))
    if operation == "GetItem":
        return [
            (
                _pk(params.get("Key")),
                _read_units(item_size(parsed.get("Item", {})), consistent),
                0.0,
            )
        ]
    if operation == "Query":
        match = _PK_CONDITION.search(params.get("KeyConditionExpression", ""))
        value = params.get("ExpressionAttributeValues", {}).get(match.group(1), {}) if match else {}
        size = sum(item_size(i) for i in parsed.get("Items", []))
        return [(str(value.get("S", "?")), _read_units(size, consistent), 0.0)]
    if operation == "PutItem":
        return [(_pk(params.get("Item")), 0.0, _write_units(params.get("Item")))]
    if operation in ("UpdateItem", "DeleteItem"):
        return [(_pk(params.get("Key")), 0.0, 1.0)]
    out: list[tuple[str, float, float]] = []
    if operation == "BatchWriteItem":
        for requests in params.get("RequestItems", {}).values():
            for request in requests:
                item = request.get("PutRequest", {}).get("Item")
                key = item or request.get("DeleteRequest", {}).get("Key")
                out.append((_pk(key), 0.0, _write_units(item)))
    elif operation == "TransactWriteItems":
        for entry in params.get("TransactItems", []):
            body = next(iter(entry.values()), {})
            out.append((_pk(body.get("Item") or body.get("Key")), 0.0, 2.0))
    return out


class MeteredHandler:
    """Stands in for a handler module: invokes its ``handler`` and bills the invocation.

    Billed duration = own Python time (wall time minus time inside AWS calls),
    scaled by the vCPU share the function's memory buys, plus the modelled
    latency of its AWS calls, rounded up to 1 ms as Lambda bills.
    """

    def __init__(
        self, name: str, function: Callable[[Any, Any], Any], meter: AwsMeter, billed_as: str = ""
    ) -> None:
        self.name = billed_as or name
        self._function = function
        self._meter = meter

    def handler(self, event: Any, context: Any) -> Any:
        meter = self._meter
        call_seconds, latency_ms = meter.call_seconds, meter.modelled_latency_ms
        started = time.perf_counter()
        try:
            return self._function(event, context)
        finally:
            wall = time.perf_counter() - started
            own_ms = (wall - (meter.call_seconds - call_seconds)) * 1000
            cpu_scale = max(1.0, LAMBDA_VCPU_MB / LAMBDA_MEMORY_MB[self.name])
            billed = own_ms * cpu_scale + (meter.modelled_latency_ms - latency_ms)
            meter.usage.invocations[self.name] += 1
            meter.usage.billed_ms[self.name] += math.ceil(billed)
