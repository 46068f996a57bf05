"""SigV4 verification of local requests (pure: requests are signed with botocore, not sent)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials as BotoCredentials

from emulator.sigv4 import Credentials, SignatureError, SignedRequest, verify

LOCAL = Credentials(access_key="AKIALOCAL00000000000", secret_key="s" * 40)
URL = "http://127.0.0.1:8765/dev/@connections/abc%3D?x=1"


def signed(
    credentials: Credentials = LOCAL,
    *,
    service: str = "execute-api",
    region: str = "us-east-1",
    body: bytes = b"hello",
) -> dict[str, str]:
    """The headers botocore sends for a POST of ``body`` to ``URL``."""
    request = AWSRequest(method="POST", url=URL, data=body)
    SigV4Auth(BotoCredentials(credentials.access_key, credentials.secret_key), service, region)\
        .add_auth(request)  # fmt: skip
    headers = {k: str(v) for k, v in request.headers.items()}
    headers["Host"] = "127.0.0.1:8765"
    return headers


def check(headers: Any, *, body: bytes = b"hello", **kwargs: Any) -> str:
    request = SignedRequest("POST", "/dev/@connections/abc%3D?x=1", headers, body)
    return verify(request, LOCAL, **kwargs)


def refusal(headers: dict[str, str], **kwargs: Any) -> str:
    with pytest.raises(SignatureError) as caught:
        check(headers, **kwargs)
    return caught.value.code


def test_given_a_request_signed_with_the_local_credentials_then_its_service_is_returned() -> None:
    assert check(signed(), region="us-east-1", service="execute-api") == "execute-api"
    # Header order and case do not matter; a list of pairs works as well as a mapping
    assert check(list(reversed([(k.upper(), v) for k, v in signed().items()]))) == "execute-api"


@pytest.mark.parametrize(
    ("edit", "code"),
    [
        (lambda h: h.pop("Authorization"), "MissingAuthenticationTokenException"),
        (lambda h: h.update(Authorization="Bearer x"), "IncompleteSignatureException"),
        (
            lambda h: h.update(Authorization=h["Authorization"].replace("/aws4_request", "/x")),
            "IncompleteSignatureException",
        ),
        (
            lambda h: h.update(
                Authorization=h["Authorization"].replace("host;x-amz-date", "x-amz-date")
            ),
            "IncompleteSignatureException",
        ),
        (lambda h: h.update({"X-Amz-Date": "yesterday"}), "IncompleteSignatureException"),
        (lambda h: h.update({"X-Amz-Date": "20200101T000000Z"}), "InvalidSignatureException"),
        (lambda h: h.update(Host="evil.example"), "InvalidSignatureException"),
    ],
)
def test_given_a_tampered_authorization_then_the_request_is_refused(edit: Any, code: str) -> None:
    headers = signed()
    edit(headers)
    assert refusal(headers) == code


def test_given_a_signed_header_that_is_missing_then_the_request_is_refused() -> None:
    headers = signed()
    headers["Authorization"] = headers["Authorization"].replace(
        "SignedHeaders=", "SignedHeaders=content-md5;"
    )
    assert refusal(headers) == "IncompleteSignatureException"


def test_given_other_credentials_or_a_wrong_scope_then_the_request_is_refused() -> None:
    other = Credentials.generate()
    assert refusal(signed(other)) == "UnrecognizedClientException"
    wrong_secret = Credentials(access_key=LOCAL.access_key, secret_key="t" * 40)
    assert refusal(signed(wrong_secret)) == "InvalidSignatureException"
    assert refusal(signed(region="eu-west-1"), region="us-east-1") == "InvalidSignatureException"
    assert refusal(signed(service="sqs"), service="execute-api") == "InvalidSignatureException"


def test_given_a_changed_body_then_the_signature_does_not_match() -> None:
    assert refusal(signed(), body=b"hellO") == "InvalidSignatureException"


def test_given_a_signature_older_than_15_minutes_then_it_has_expired() -> None:
    headers = signed()
    when = datetime.strptime(headers["X-Amz-Date"], "%Y%m%dT%H%M%SZ").replace(tzinfo=UTC)
    assert check(headers, now=when + timedelta(minutes=14)) == "execute-api"
    with pytest.raises(SignatureError, match="expired"):
        check(headers, now=when + timedelta(minutes=16))
