"""The functions' AWS clients: one botocore session, and a loader that does not
list every service at cold start (functions/dal/clients.py)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from botocore.exceptions import UnknownServiceError
from botocore.loaders import Loader

from functions.dal import clients
from functions.dal.clients import CLIENT_CONFIG, _ServiceLoader

NAMES = (
    "dynamodb",
    "sqs",
    "apigatewaymanagementapi",
    "secretsmanager",
    "no-such-service",
    "",
    ".",
    "..",
    "dynamodb/2012-08-10",
    "../data/dynamodb",
)
TYPES = ("service-2", "endpoint-rule-set-1")


@pytest.fixture
def fresh_session(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "test")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "test")
    clients._session.cache_clear()
    yield
    clients._session.cache_clear()


@pytest.mark.parametrize("type_name", TYPES)
def test_given_a_service_name_when_looked_up_then_the_answer_is_botocores(type_name: str) -> None:
    # Given botocore's loader and ours, on the same search paths
    reference = Loader()
    ours = _ServiceLoader()
    # When each is asked whether it knows a name
    known = reference.list_available_services(type_name)
    answers = {n: n in ours.list_available_services(type_name) for n in NAMES}
    # Then they answer alike, and list the same services when iterated
    assert answers == {n: n in known for n in NAMES}
    assert list(ours.list_available_services(type_name)) == known
    assert len(ours.list_available_services(type_name)) == len(known)


def test_given_the_first_client_when_created_then_no_service_listing_is_made(
    fresh_session: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given botocore's listing of every service directory made unusable
    def listing(self: Loader, type_name: str) -> list[str]:
        raise AssertionError("listed every service")

    monkeypatch.setattr(Loader, "list_available_services", listing)
    # When the functions create their clients
    dynamodb = clients.client("dynamodb", config=CLIENT_CONFIG)
    sqs = clients.client("sqs", config=CLIENT_CONFIG)
    # Then they were made without it, from one session
    assert dynamodb.meta.service_model.service_name == "dynamodb"
    assert sqs.meta.region_name == "us-east-1"
    assert clients._session.cache_info().currsize == 1
    assert isinstance(clients._session().get_component("data_loader"), _ServiceLoader)


def test_given_an_unknown_service_when_a_client_is_asked_then_botocores_error(
    fresh_session: None,
) -> None:
    # Given the functions' session
    # When a client of a service botocore does not know is asked for
    with pytest.raises(UnknownServiceError) as raised:
        clients.client("no-such-service")
    # Then botocore's own error names the known services
    assert "dynamodb" in str(raised.value)


def test_a_lazy_client_used_first_by_many_threads_at_once_is_created_once() -> None:
    # Given a lazy client whose factory waits until 8 threads ask for it together
    import threading

    from functions.dal.clients import LazyClient

    arrived = threading.Barrier(8, timeout=60)
    made: list[object] = []
    # The first creation lingers for a second creation that only an unlocked
    # client lets in (correct code never sets it: the wait just ends).
    second = threading.Event()

    class Client:
        def post(self) -> int:
            return len(made)

    def factory() -> Client:
        made.append(object())
        if len(made) == 1:
            second.wait(timeout=0.5)
        else:
            second.set()
        return Client()

    lazy = LazyClient(factory)

    def use() -> None:
        arrived.wait()
        lazy.post()

    # When 8 threads make their first call at once
    threads = [threading.Thread(target=use) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    # Then one client was made (botocore sessions are not thread-safe)
    assert len(made) == 1
