"""The event builders produce what AWS documents (pure functions, no server)."""

from __future__ import annotations

import re

from emulator.events import (
    ConnectionInfo,
    Stamp,
    authorizer_event,
    connect_event,
    disconnect_event,
    message_event,
    new_id,
    sqs_record,
)

INFO = ConnectionInfo(
    connection_id="abcDEF123456789=",
    connected_at=1_700_000_000_000,
    source_ip="192.0.2.1",
    user_agent="Mozilla/5.0",
    domain_name="abc123.execute-api.us-east-1.amazonaws.com",
    stage="dev",
    api_id="abc123",
    headers={"Host": ["abc123.execute-api.us-east-1.amazonaws.com"], "X-A": ["1", "2"]},
    query={"token": ["t"]},
    authorizer={"principalId": "acme/b1", "tenant": "acme", "role": "browser"},
)
STAMP = Stamp(now_ms=1, request_id="r")
# Keys of requestContext in AWS's documented WebSocket proxy events.
CONTEXT_KEYS = {
    "routeKey", "eventType", "extendedRequestId", "requestTime", "messageDirection", "stage",
    "connectedAt", "requestTimeEpoch", "identity", "requestId", "domainName", "connectionId",
    "apiId",
}  # fmt: skip


def test_connect_event_matches_the_documented_shape() -> None:
    event = connect_event(INFO, stamp=Stamp(now_ms=1_700_000_000_100, request_id="r1"))
    assert set(event) == {
        "headers",
        "multiValueHeaders",
        "queryStringParameters",
        "multiValueQueryStringParameters",
        "requestContext",
        "isBase64Encoded",
    }
    ctx = event["requestContext"]
    assert set(ctx) == CONTEXT_KEYS | {"authorizer"}
    assert (ctx["eventType"], ctx["routeKey"]) == ("CONNECT", "$connect")
    assert ctx["identity"] == {"sourceIp": "192.0.2.1", "userAgent": "Mozilla/5.0"}
    assert event["headers"]["X-A"] == "2" and event["multiValueHeaders"]["X-A"] == ["1", "2"]
    assert re.fullmatch(r"\d{2}/[A-Z][a-z]{2}/\d{4}:\d{2}:\d{2}:\d{2} \+0000", ctx["requestTime"])


def test_message_event_has_message_id_and_no_headers() -> None:
    event = message_event(INFO, route_key="$default", body="hi", message_id="m", stamp=STAMP)
    assert set(event) == {"requestContext", "body", "isBase64Encoded"}
    assert set(event["requestContext"]) == CONTEXT_KEYS | {"authorizer", "messageId"}
    assert event["requestContext"]["identity"] == {"sourceIp": "192.0.2.1"}


def test_binary_message_is_base64() -> None:
    event = message_event(INFO, route_key="$default", body=b"\x00\x01", message_id="m", stamp=STAMP)
    assert (event["body"], event["isBase64Encoded"]) == ("AAE=", True)


def test_disconnect_event_carries_status_and_reason() -> None:
    event = disconnect_event(INFO, status_code=1001, reason="Going away", stamp=STAMP)
    ctx = event["requestContext"]
    assert set(ctx) == CONTEXT_KEYS | {"authorizer", "disconnectStatusCode", "disconnectReason"}
    assert (ctx["eventType"], ctx["routeKey"]) == ("DISCONNECT", "$disconnect")
    assert "queryStringParameters" not in event


def test_authorizer_event_is_a_request_authorizer_event_without_context() -> None:
    event = authorizer_event(INFO, method_arn="arn:x", stamp=STAMP)
    assert (event["type"], event["methodArn"]) == ("REQUEST", "arn:x")
    assert event["queryStringParameters"] == {"token": "t"}
    assert "authorizer" not in event["requestContext"]
    assert event["stageVariables"] == {}


def test_sqs_record_shape() -> None:
    record = sqs_record(
        {
            "MessageId": "m1",
            "ReceiptHandle": "rh",
            "Body": "b",
            "MD5OfBody": "md5",
            "Attributes": {"ApproximateReceiveCount": "1"},
            "MessageAttributes": {"k": {"DataType": "String", "StringValue": "v"}},
        },
        queue_arn="arn:aws:sqs:us-east-1:1:q",
        region="us-east-1",
    )
    assert record["eventSource"] == "aws:sqs"
    assert record["messageAttributes"]["k"] == {
        "stringValue": "v",
        "stringListValues": [],
        "binaryListValues": [],
        "dataType": "String",
    }


def test_ids_look_like_api_gateway_ids_and_need_no_url_quoting() -> None:
    ids = {new_id() for _ in range(100)}
    assert len(ids) == 100
    assert all(re.fullmatch(r"[A-Za-z0-9]{15}=", i) for i in ids)
