"""AWS clients of the Lambda functions: configuration, created on first use.

A handler builds only what its invocations use: a :class:`LazyClient` stands
for a client and creates it (loading its service model, the costly part) on
the first attribute read, then keeps it for every warm invocation of the
container. All clients of a container come from one botocore session (one
credential chain, one cache of loaded models); boto3's resource layer is not
used, so the functions import botocore only. botocore is the Lambda runtime's
(the asset does not carry it).
"""

from __future__ import annotations

import functools
import os
import threading
from collections.abc import Callable, Iterator, Sequence
from typing import Any, overload

import botocore.session
from botocore.config import Config
from botocore.loaders import Loader

__all__ = [
    "CLIENT_CONFIG",
    "HANDOFF_SECONDS",
    "MANAGEMENT_CONFIG",
    "MANAGEMENT_CONNECT_TIMEOUT",
    "MANAGEMENT_MAX_ATTEMPTS",
    "MANAGEMENT_POST_WORST_SECONDS",
    "MANAGEMENT_READ_TIMEOUT",
    "MAX_POOL_CONNECTIONS",
    "AWSClients",
    "LazyClient",
    "client",
    "secrets_manager",
]

#: HTTP connections each client keeps: a fan-out runs up to this many posts (and
#: their DynamoDB calls) at once (``FAN_OUT_CONCURRENCY`` is at most this; botocore's
#: default, 10, would drop and reopen connections beyond it).
MAX_POOL_CONNECTIONS = 16
# Lambda has seconds, not minutes: fail fast and let SQS retry, rather than
# let botocore's retries eat the function's timeout.
CLIENT_CONFIG = Config(
    connect_timeout=2,
    read_timeout=5,
    retries={"max_attempts": 3, "mode": "standard"},
    max_pool_connections=MAX_POOL_CONNECTIONS,
)
# A post to @connections answers in tens of milliseconds or not at all: 1 s to
# connect, 1 s to read, one retry. That bounds one post, so the message function's
# inline fan-out (up to 10 posts) can stop and hand off to the bus in time.
MANAGEMENT_CONNECT_TIMEOUT = 1
MANAGEMENT_READ_TIMEOUT = 1
MANAGEMENT_MAX_ATTEMPTS = 2
MANAGEMENT_CONFIG = Config(
    connect_timeout=MANAGEMENT_CONNECT_TIMEOUT,
    read_timeout=MANAGEMENT_READ_TIMEOUT,
    # total_max_attempts counts the first attempt (botocore's max_attempts does not).
    retries={"total_max_attempts": MANAGEMENT_MAX_ATTEMPTS, "mode": "standard"},
    max_pool_connections=MAX_POOL_CONNECTIONS,
)
#: The longest one post can take: every attempt times out connecting and then
#: reading, and botocore's standard mode waits up to 1 s before the (first) retry.
MANAGEMENT_POST_WORST_SECONDS = MANAGEMENT_MAX_ATTEMPTS * (
    MANAGEMENT_CONNECT_TIMEOUT + MANAGEMENT_READ_TIMEOUT
) + (MANAGEMENT_MAX_ATTEMPTS - 1)
#: Left for handing the rest of an inline fan-out to the bus (one SQS send).
HANDOFF_SECONDS = 1


class _KnownServices(Sequence[str]):
    """The services a :class:`Loader` knows for one data type, answering ``in``
    for one name by looking at that service's directory only; the full listing
    (every service directory on every search path) is made only if iterated."""

    def __init__(self, loader: _ServiceLoader, type_name: str) -> None:
        self._loader = loader
        self._type_name = type_name

    def __contains__(self, name: object) -> bool:
        if not isinstance(name, str) or name in ("", ".", "..") or os.path.basename(name) != name:
            return False
        exists = self._loader.file_loader.exists
        for root in self._loader.search_paths:
            directory = os.path.join(root, name)
            if not os.path.isdir(directory):
                continue
            for version in os.listdir(directory):
                if exists(os.path.join(directory, version, self._type_name)):
                    return True
        return False

    def _all(self) -> list[str]:
        return self._loader.list_all_services(self._type_name)

    def __iter__(self) -> Iterator[str]:
        return iter(self._all())

    def __len__(self) -> int:
        return len(self._all())

    @overload
    def __getitem__(self, index: int) -> str: ...
    @overload
    def __getitem__(self, index: slice) -> Sequence[str]: ...
    def __getitem__(self, index: int | slice) -> str | Sequence[str]:
        return self._all()[index]


class _ServiceLoader(Loader):  # type: ignore[misc]  # botocore is untyped
    """botocore's data loader without its cold-start listing of every service.

    Before it loads a service model or endpoint rule set, botocore checks the
    name against ``list_available_services``, which lists the ~420 service
    directories (once for models, once for rule sets: about 70 ms of the first
    client). Here that check looks at the one directory asked for; what is
    loaded, and the error for an unknown service, are botocore's own.
    """

    def list_available_services(self, type_name: str) -> Sequence[str]:
        return _KnownServices(self, type_name)

    def list_all_services(self, type_name: str) -> list[str]:
        services: list[str] = Loader.list_available_services(self, type_name)
        return services


# botocore clients are thread-safe, sessions are not: clients are created under
# this lock (a fan-out's first posts may run in several threads at once).
_CREATING = threading.Lock()


@functools.cache
def _session() -> Any:
    """The container's botocore session, made by the first client."""
    session = botocore.session.get_session()
    data_path = session.get_config_variable("data_path")
    extra = [
        os.path.expanduser(os.path.expandvars(p)) for p in (data_path or "").split(os.pathsep) if p
    ]
    session.register_component("data_loader", _ServiceLoader(extra_search_paths=extra))
    return session


def client(service: str, **kwargs: Any) -> Any:
    """A new client of ``service`` from the container's one session."""
    with _CREATING:
        return _session().create_client(service, **kwargs)


class LazyClient:
    """A boto3 client made by ``factory`` on first use, then cached (once, even
    when several threads use it first at the same time)."""

    __slots__ = ("_client", "_factory", "_lock")

    def __init__(self, factory: Callable[[], Any]) -> None:
        self._factory = factory
        self._client: Any = None
        self._lock = threading.Lock()

    @property
    def created(self) -> bool:
        return self._client is not None

    def __getattr__(self, name: str) -> Any:
        # Only called for names the proxy lacks: every client method and ``meta``.
        client = self._client
        if client is None:
            with self._lock:
                client = self._client
                if client is None:
                    client = self._client = self._factory()
        return getattr(client, name)


class AWSClients:
    """The boto3 clients a gateway function may use, each created on first use.

    Tests pass their own (moto) clients; those are used as they are.
    """

    def __init__(
        self,
        *,
        dynamodb: Any = None,
        sqs: Any = None,
        management: Any = None,
        callback_url: str | None = None,
    ) -> None:
        self.dynamodb: Any = dynamodb or LazyClient(
            lambda: client("dynamodb", config=CLIENT_CONFIG)
        )
        self.sqs: Any = sqs or LazyClient(lambda: client("sqs", config=CLIENT_CONFIG))
        self.management: Any = management or LazyClient(
            lambda: client(
                "apigatewaymanagementapi", endpoint_url=callback_url, config=MANAGEMENT_CONFIG
            )
        )


def secrets_manager() -> LazyClient:
    """The Secrets Manager client of the authorizer, created on first use."""
    return LazyClient(lambda: client("secretsmanager"))
