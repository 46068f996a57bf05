"""moto as DynamoDB, SQS and Secrets Manager: the server process and the resources.

moto runs as a separate server process (moto's server app behind :class:`SignedOnly`) so it gets
the machine's other core; handlers reach it through ``AWS_ENDPOINT_URL``.
One server per Python process is shared by every gateway started in it (tests
start many); each gateway names its resources with a random suffix, as
CloudFormation does, so gateways never see each other's tables or queues.

moto does not run the ``AWS::ApiGatewayV2::*`` or ``AWS::DynamoDB::GlobalTable``
CloudFormation types, so resources are created here directly from the
template model rather than through moto's CloudFormation.
"""

from __future__ import annotations

import atexit
import contextlib
import io
import json
import os
import secrets
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import boto3
from botocore.config import Config

from emulator.sigv4 import Credentials, SignatureError, SignedRequest, verify
from emulator.template import Model, Queue, Secret, Table

__all__ = [
    "ACCOUNT_ID",
    "REGION",
    "MotoServer",
    "Provisioned",
    "SignedOnly",
    "aws_environment",
    "free_port",
    "provision",
    "shared_moto",
]

REGION = "us-east-1"
ACCOUNT_ID = "123456789012"
#: How the moto process gets its credentials from the emulator (never on argv).
_KEY_VARIABLES = ("TABRELAY_LOCAL_ACCESS_KEY_ID", "TABRELAY_LOCAL_SECRET_ACCESS_KEY")


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port that is free right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def aws_environment(endpoint: str, credentials: Credentials) -> dict[str, str]:
    """The variables that point boto3 (handlers and ours) at moto."""
    return {
        "AWS_ENDPOINT_URL": endpoint,
        "AWS_DEFAULT_REGION": REGION,
        "AWS_REGION": REGION,
        **credentials.environment(),
        # Credentials come from the variables above, never from a profile.
        "AWS_CONFIG_FILE": os.devnull,
        "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
    }


class SignedOnly:
    """WSGI middleware in front of moto: only requests SigV4-signed with the local
    credentials get through (see :mod:`emulator.sigv4`).

    Everything else, CORS preflights included, gets 403 and no
    ``Access-Control-*`` header, and none of moto's own CORS headers leave:
    no web page can read or write local mode's tables, queues or the signing key.
    """

    def __init__(self, app: Any, credentials: Credentials) -> None:
        self._app = app
        self._credentials = credentials

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Any:
        try:
            if environ.get("REQUEST_METHOD") == "OPTIONS":
                raise SignatureError("AccessDeniedException", "local mode refuses CORS preflights")
            body = _read_body(environ)
            headers = [
                (key[5:].replace("_", "-"), str(value))
                for key, value in environ.items()
                if key.startswith("HTTP_")
            ]
            for key in ("CONTENT_TYPE", "CONTENT_LENGTH"):
                if environ.get(key):
                    headers.append((key.replace("_", "-"), str(environ[key])))
            raw_path = environ.get("RAW_URI") or environ.get("REQUEST_URI")
            if not raw_path:
                query = environ.get("QUERY_STRING")
                raw_path = environ.get("PATH_INFO", "/") + (f"?{query}" if query else "")
            verify(
                SignedRequest(
                    method=str(environ.get("REQUEST_METHOD", "GET")),
                    raw_path=str(raw_path),
                    headers=headers,
                    body=body,
                ),
                self._credentials,
                region=REGION,
            )
        except SignatureError as refused:
            payload = json.dumps({"__type": refused.code, "message": refused.message}).encode()
            start_response(
                "403 Forbidden",
                [
                    ("Content-Type", "application/x-amz-json-1.0"),
                    ("x-amzn-ErrorType", refused.code),
                    ("Content-Length", str(len(payload))),
                ],
            )
            return [payload]

        def without_cors(status: str, response_headers: list[tuple[str, str]], *rest: Any) -> Any:
            kept = [h for h in response_headers if not h[0].lower().startswith("access-control-")]
            return start_response(status, kept, *rest)

        return self._app(environ, without_cors)


def _read_body(environ: dict[str, Any]) -> bytes:
    """The whole request body, put back for the app behind to read again."""
    stream = environ["wsgi.input"]
    length = environ.get("CONTENT_LENGTH")
    if length:
        body = stream.read(int(length))
    elif environ.get("wsgi.input_terminated"):
        body = stream.read()
    else:
        body = b""
    environ["wsgi.input"] = io.BytesIO(body)
    environ["CONTENT_LENGTH"] = str(len(body))
    return bytes(body)


def serve_moto(host: str, port: int) -> None:
    """Run moto's server behind :class:`SignedOnly` (the body of the moto process)."""
    import signal

    os.environ["MOTO_DISABLE_GLOBAL_CORS"] = "true"  # read by moto at import
    access, secret = (os.environ.pop(name) for name in _KEY_VARIABLES)
    from moto.moto_server.werkzeug_app import (
        DomainDispatcherApplication,
        MotoRequestHandler,
        create_backend_app,
    )
    from werkzeug.serving import run_simple

    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    signal.signal(signal.SIGINT, lambda *_: sys.exit(0))
    app = SignedOnly(DomainDispatcherApplication(create_backend_app), Credentials(access, secret))
    run_simple(host, port, app, threaded=True, request_handler=MotoRequestHandler)


# Runs moto's server and exits when the process that started it is gone (even
# after SIGKILL), so no orphan keeps a port. PR_SET_PDEATHSIG would fire when
# the starting *thread* ends, which asyncio's executor threads do.
_LAUNCHER = """
import os, sys, threading, time
parent = os.getppid()
def watch():
    while os.getppid() == parent:
        time.sleep(1)
    os._exit(0)
threading.Thread(target=watch, daemon=True).start()
sys.path.insert(0, sys.argv[1])
from emulator.backend import serve_moto
serve_moto(sys.argv[2], int(sys.argv[3]))
"""

_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


class MotoServer:
    """A moto server process on a free loopback port (127.0.0.1 only), answering
    only requests signed with ``credentials`` (random unless given)."""

    def __init__(self, port: int = 0, credentials: Credentials | None = None) -> None:
        self.port = port or free_port()
        self.endpoint = f"http://127.0.0.1:{self.port}"
        self.credentials = credentials or Credentials.generate()
        self._process: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float = 60.0) -> None:
        """Start the server and wait until it answers (bounded by ``timeout``)."""
        _known_credentials[self.endpoint] = self.credentials
        keys = dict(
            zip(
                _KEY_VARIABLES,
                (self.credentials.access_key, self.credentials.secret_key),
                strict=True,
            )
        )
        self._process = subprocess.Popen(
            [sys.executable, "-c", _LAUNCHER, _ROOT, "127.0.0.1", str(self.port)],
            env={**os.environ, **keys},
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            stdin=subprocess.DEVNULL,
            # Its own session: a Ctrl-C in the terminal must reach the gateway
            # (which then runs every $disconnect against moto), not moto itself.
            start_new_session=True,
        )
        deadline = time.monotonic() + timeout
        while True:
            if self._process.poll() is not None:
                raise RuntimeError(f"moto server exited with {self._process.returncode}")
            try:
                # Unsigned, so refused: any HTTP answer means it is serving.
                with urllib.request.urlopen(f"{self.endpoint}/moto-api/", timeout=1):
                    return
            except urllib.error.HTTPError:
                return
            except OSError:
                if time.monotonic() > deadline:
                    self.stop()
                    raise RuntimeError("moto server did not start in time") from None
                # Polling a process we do not control; there is no event to wait on.
                time.sleep(0.05)

    def stop(self) -> None:
        """Terminate the server process."""
        if self._process is not None and self._process.poll() is None:
            self._process.terminate()
            try:
                self._process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait()
        self._process = None


_shared: MotoServer | None = None
_shared_lock = threading.Lock()


def shared_moto() -> MotoServer:
    """The process-wide moto server, started on first use and stopped at exit."""
    global _shared
    with _shared_lock:
        if _shared is None:
            server = MotoServer()
            server.start()
            atexit.register(server.stop)
            _shared = server
        return _shared


_clients: dict[tuple[str, str, str], Any] = {}
_clients_lock = threading.Lock()
_known_credentials: dict[str, Credentials] = {}


def client(service: str, endpoint: str, credentials: Credentials | None = None) -> Any:
    """A boto3 client for moto at ``endpoint`` (cached: clients are thread-safe, costly to make).

    ``credentials`` default to those of the :class:`MotoServer` this process
    started at ``endpoint``.
    """
    credentials = credentials or _known_credentials[endpoint]
    with _clients_lock:
        found = _clients.get((service, endpoint, credentials.access_key))
        if found is None:
            found = boto3.session.Session(
                aws_access_key_id=credentials.access_key,
                aws_secret_access_key=credentials.secret_key,
                region_name=REGION,
            ).client(
                service,
                endpoint_url=endpoint,
                config=Config(
                    max_pool_connections=64, retries={"max_attempts": 2, "mode": "standard"}
                ),
            )
            _clients[(service, endpoint, credentials.access_key)] = found
        return found


@dataclass
class Provisioned:
    """The physical names and ARNs of one gateway's resources."""

    suffix: str
    queue_urls: dict[str, str] = field(default_factory=dict)
    queue_arns: dict[str, str] = field(default_factory=dict)
    queue_names: dict[str, str] = field(default_factory=dict)
    table_names: dict[str, str] = field(default_factory=dict)
    secret_arns: dict[str, str] = field(default_factory=dict)
    secret_names: dict[str, str] = field(default_factory=dict)


def _physical_name(stack: str, logical_id: str, suffix: str, limit: int) -> str:
    # CloudFormation-style generated names: stack-logical-RANDOM, within the service's limit.
    base = f"{stack}-{logical_id}"[: limit - len(suffix) - 1]
    return f"{base}-{suffix}"


def _resolved_name(raw: Any, resolve: Any) -> str | None:
    if raw is None:
        return None
    return str(resolve(raw))


def _create_queue(sqs: Any, queue: Queue, name: str, model: Model, out: Provisioned) -> None:
    attributes = dict(queue.attributes)
    if queue.fifo:
        attributes["FifoQueue"] = "true"
    if queue.dead_letter_id is not None:
        attributes["RedrivePolicy"] = json.dumps(
            {
                "deadLetterTargetArn": out.queue_arns[queue.dead_letter_id],
                "maxReceiveCount": queue.max_receive_count or 1,
            }
        )
    url = sqs.create_queue(QueueName=name, Attributes=attributes)["QueueUrl"]
    out.queue_urls[queue.logical_id] = url
    out.queue_names[queue.logical_id] = name
    out.queue_arns[queue.logical_id] = f"arn:aws:sqs:{REGION}:{ACCOUNT_ID}:{name}"


def _create_table(ddb: Any, table: Table, name: str) -> None:
    kwargs: dict[str, Any] = {
        "TableName": name,
        "KeySchema": list(table.key_schema),
        "AttributeDefinitions": list(table.attribute_definitions),
        "BillingMode": "PAY_PER_REQUEST",
    }
    if table.global_secondary_indexes:
        kwargs["GlobalSecondaryIndexes"] = [
            {
                "IndexName": gsi["IndexName"],
                "KeySchema": gsi["KeySchema"],
                "Projection": gsi.get("Projection", {"ProjectionType": "ALL"}),
            }
            for gsi in table.global_secondary_indexes
        ]
    if table.local_secondary_indexes:
        kwargs["LocalSecondaryIndexes"] = [
            {
                "IndexName": lsi["IndexName"],
                "KeySchema": lsi["KeySchema"],
                "Projection": lsi.get("Projection", {"ProjectionType": "ALL"}),
            }
            for lsi in table.local_secondary_indexes
        ]
    ddb.create_table(**kwargs)
    if table.ttl_attribute:
        ddb.update_time_to_live(
            TableName=name,
            TimeToLiveSpecification={"Enabled": True, "AttributeName": table.ttl_attribute},
        )


def secret_value(secret: Secret, signing_key: str) -> str:
    """The value the local secret holds: the signing key, shaped as the template asks.

    A generated secret with a ``SecretStringTemplate`` becomes that JSON object
    with the key under ``GenerateStringKey`` (what Secrets Manager would
    generate); otherwise the secret string is the key itself.
    """
    if secret.string_template is not None and secret.generate_key:
        data = json.loads(secret.string_template)
        data[secret.generate_key] = signing_key
        return json.dumps(data)
    return signing_key


def provision(
    model: Model,
    endpoint: str,
    *,
    stack: str,
    signing_key: str,
    name_of: Any,
) -> Provisioned:
    """Create the template's queues, tables and secrets in moto.

    ``name_of(raw_name)`` resolves a ``QueueName``/``TableName``/``Name``
    property that may hold intrinsics. Explicit names get the gateway's suffix
    appended, so several gateways can share one moto server.
    """
    out = Provisioned(suffix=secrets.token_hex(4).upper())
    sqs = client("sqs", endpoint)
    ddb = client("dynamodb", endpoint)
    sm = client("secretsmanager", endpoint)

    # Dead-letter queues first: redrive policies name their ARNs.
    pending = dict(model.queues)
    while pending:
        progressed = False
        for lid, queue in list(pending.items()):
            if queue.dead_letter_id is not None and queue.dead_letter_id not in out.queue_arns:
                continue
            explicit = _resolved_name(queue.name, name_of)
            fifo = ".fifo" if queue.fifo else ""
            if explicit:
                stem = explicit.removesuffix(".fifo")[: 80 - len(fifo) - 9]
                name = f"{stem}-{out.suffix}{fifo}"
            else:
                name = _physical_name(stack, lid, out.suffix, 80 - len(fifo)) + fifo
            _create_queue(sqs, queue, name, model, out)
            del pending[lid]
            progressed = True
        if not progressed:
            raise ValueError(f"redrive policies form a cycle: {sorted(pending)}")

    for lid, table in model.tables.items():
        explicit = _resolved_name(table.name, name_of)
        name = (
            f"{explicit}-{out.suffix}" if explicit else _physical_name(stack, lid, out.suffix, 255)
        )
        _create_table(ddb, table, name)
        out.table_names[lid] = name

    for lid, secret in model.secrets.items():
        explicit = _resolved_name(secret.name, name_of)
        name = (
            f"{explicit}-{out.suffix}" if explicit else _physical_name(stack, lid, out.suffix, 256)
        )
        arn = sm.create_secret(Name=name, SecretString=secret_value(secret, signing_key))["ARN"]
        out.secret_arns[lid] = arn
        out.secret_names[lid] = name
    return out


def deprovision(out: Provisioned, endpoint: str) -> None:
    """Delete what :func:`provision` created (best effort: the server may be gone)."""
    sqs = client("sqs", endpoint)
    ddb = client("dynamodb", endpoint)
    sm = client("secretsmanager", endpoint)
    for url in out.queue_urls.values():
        with contextlib.suppress(Exception):
            sqs.delete_queue(QueueUrl=url)
    for name in out.table_names.values():
        with contextlib.suppress(Exception):
            ddb.delete_table(TableName=name)
    for arn in out.secret_arns.values():
        with contextlib.suppress(Exception):
            sm.delete_secret(SecretId=arn, ForceDeleteWithoutRecovery=True)


def queue_depths(sqs: Any, urls: Mapping[str, str]) -> dict[str, tuple[int, int]]:
    """Visible and in-flight message counts per logical queue id."""
    depths: dict[str, tuple[int, int]] = {}
    for lid, url in urls.items():
        attrs = sqs.get_queue_attributes(
            QueueUrl=url,
            AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"],
        )["Attributes"]
        depths[lid] = (
            int(attrs.get("ApproximateNumberOfMessages", 0)),
            int(attrs.get("ApproximateNumberOfMessagesNotVisible", 0)),
        )
    return depths
