"""Local credentials and SigV4 verification, so no web page can reach local mode.

A page the developer visits may send requests to ``localhost`` (simple
cross-site POSTs need no CORS preflight; DNS rebinding even makes the page
same-origin). AWS refuses anything not signed with valid credentials; local
mode does the same: the moto server and the emulated ``@connections`` API
accept only requests SigV4-signed with the local credentials (random, kept in
``.local/config.json``, printed by ``make run``). A browser page cannot sign
with a secret it does not know, and a preflight (which a signed request from a
page would need) is refused.

The signature is recomputed with botocore's own SigV4 signer from the request
as received (method, raw path and query, the headers the client signed, the
body) and compared in constant time.
"""

from __future__ import annotations

import hmac
import re
import secrets
import string
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.compat import HTTPHeaders
from botocore.credentials import Credentials as BotoCredentials

__all__ = ["Credentials", "SignatureError", "SignedRequest", "verify"]

#: AWS refuses requests whose X-Amz-Date is further than this from its clock.
MAX_SKEW = timedelta(minutes=15)

_AUTH = re.compile(
    r"^AWS4-HMAC-SHA256\s+Credential=(?P<credential>[^,\s]+)\s*,\s*"
    r"SignedHeaders=(?P<signed>[^,\s]+)\s*,\s*Signature=(?P<signature>[0-9a-f]{64})\s*$"
)


@dataclass(frozen=True, slots=True)
class Credentials:
    """An access key pair (what boto3 and the AWS CLI need to sign)."""

    access_key: str
    secret_key: str

    @classmethod
    def generate(cls) -> Credentials:
        """Fresh random credentials, shaped like AWS's (20-character id, 40-character secret)."""
        alphabet = string.ascii_uppercase + string.digits
        access = "AKIALOCAL" + "".join(secrets.choice(alphabet) for _ in range(11))
        return cls(access_key=access, secret_key=secrets.token_urlsafe(30))

    def environment(self) -> dict[str, str]:
        # The session token is blanked, not left out: a token some other code put in
        # this process's environment (a moto test's "testing") would otherwise be
        # signed along and the request refused. botocore sends no empty token.
        return {
            "AWS_ACCESS_KEY_ID": self.access_key,
            "AWS_SECRET_ACCESS_KEY": self.secret_key,
            "AWS_SESSION_TOKEN": "",
            "AWS_SECURITY_TOKEN": "",
        }


class SignatureError(Exception):
    """Why a request is refused: ``code`` as AWS names it, and a message."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


class _ReceivedSigV4(SigV4Auth):  # type: ignore[misc]  # botocore has no types
    """botocore's signer, signing exactly the headers the client said it signed."""

    def __init__(self, credentials: BotoCredentials, service: str, region: str, signed: list[str]):
        super().__init__(credentials, service, region)
        self._signed = signed

    def headers_to_sign(self, request: AWSRequest) -> HTTPHeaders:
        chosen = HTTPHeaders()
        for name in self._signed:
            for value in request.headers.get_all(name) or []:
                chosen[name] = value
        return chosen


@dataclass(frozen=True, slots=True)
class SignedRequest:
    """A request as received: ``raw_path`` is the path and query exactly as sent."""

    method: str
    raw_path: str
    headers: Mapping[str, str] | Sequence[tuple[str, str]]
    body: bytes


@dataclass(frozen=True, slots=True)
class _Authorization:
    """The parts of an ``AWS4-HMAC-SHA256`` Authorization header."""

    access_key: str
    day: str
    region: str
    service: str
    signed: list[str]
    signature: str


def _authorization(received: HTTPHeaders) -> _Authorization:
    authorization = received.get("authorization")
    if not authorization:
        raise SignatureError("MissingAuthenticationTokenException", "Missing Authentication Token")
    match = _AUTH.match(authorization.strip())
    if match is None:
        raise SignatureError("IncompleteSignatureException", "Authorization header is malformed")
    scope = match["credential"].split("/")
    if len(scope) != 5 or scope[4] != "aws4_request":
        raise SignatureError("IncompleteSignatureException", "Credential scope is malformed")
    access_key, day, region, service, _ = scope
    return _Authorization(
        access_key, day, region, service, match["signed"].split(";"), match["signature"]
    )


def _check_scope(
    auth: _Authorization, credentials: Credentials, region: str | None, service: str | None
) -> None:
    if not hmac.compare_digest(auth.access_key, credentials.access_key):
        raise SignatureError(
            "UnrecognizedClientException", "The security token included in the request is invalid."
        )
    if region is not None and auth.region != region:
        raise SignatureError(
            "InvalidSignatureException", f"Credential should be scoped to {region}"
        )
    if service is not None and auth.service != service:
        raise SignatureError(
            "InvalidSignatureException", f"Credential should be scoped to {service}"
        )
    if "host" not in auth.signed or "x-amz-date" not in auth.signed:
        raise SignatureError("IncompleteSignatureException", "host and x-amz-date must be signed")


def _check_date(received: HTTPHeaders, auth: _Authorization, now: datetime | None) -> str:
    """The request's X-Amz-Date, if it is well-formed, the scope's day and not stale."""
    stamp = received.get("x-amz-date", "")
    try:
        when = datetime.strptime(stamp, "%Y%m%dT%H%M%SZ").replace(tzinfo=UTC)
    except ValueError:
        raise SignatureError("IncompleteSignatureException", "X-Amz-Date is missing") from None
    if stamp[:8] != auth.day:
        raise SignatureError("InvalidSignatureException", "Credential date is not X-Amz-Date's")
    if abs((now or datetime.now(UTC)) - when) > MAX_SKEW:
        raise SignatureError("InvalidSignatureException", "Signature expired")
    return str(stamp)


def verify(
    request: SignedRequest,
    credentials: Credentials,
    *,
    region: str | None = None,
    service: str | None = None,
    now: datetime | None = None,
) -> str:
    """Check a request's SigV4 ``Authorization`` header; the signed service, or raise.

    ``region``/``service``, when given, must be those of the credential scope.
    Raises :class:`SignatureError` for a missing, foreign, stale or wrong
    signature.
    """
    pairs = (
        list(request.headers.items())
        if isinstance(request.headers, Mapping)
        else list(request.headers)
    )
    received = HTTPHeaders()
    for name, value in pairs:
        received[name.lower()] = value
    auth = _authorization(received)
    _check_scope(auth, credentials, region, service)
    stamp = _check_date(received, auth, now)
    if any(name not in received for name in auth.signed):
        raise SignatureError("IncompleteSignatureException", "a signed header is missing")

    recomputed = AWSRequest(
        method=request.method, url=f"http://{received['host']}{request.raw_path}", data=request.body
    )
    recomputed.headers = received
    recomputed.context["timestamp"] = stamp
    signer = _ReceivedSigV4(
        BotoCredentials(credentials.access_key, credentials.secret_key),
        auth.service,
        auth.region,
        auth.signed,
    )
    canonical = signer.canonical_request(recomputed)
    expected = signer.signature(signer.string_to_sign(recomputed, canonical), recomputed)
    if not hmac.compare_digest(expected, auth.signature):
        raise SignatureError(
            "InvalidSignatureException",
            "The request signature we calculated does not match the signature you provided.",
        )
    return auth.service
