"""Stack settings from CDK context: defaults, overrides, and values AWS would refuse."""

from __future__ import annotations

from typing import Any

import pytest

from infra.config import InvalidSettingError, StackSettings


class FakeContext:
    """A construct node's ``try_get_context`` over a plain dict."""

    def __init__(self, values: dict[str, Any]) -> None:
        self._values = values

    def try_get_context(self, key: str) -> Any:
        return self._values.get(key)


def test_without_context_every_setting_has_its_default() -> None:
    settings = StackSettings.from_context(FakeContext({}))
    assert settings == StackSettings()
    assert settings.stage == "dev"
    assert settings.retain is False


def test_context_strings_override_settings_by_camel_case_key() -> None:
    # Given context as the CDK CLI passes it (-c key=value: strings)
    context = {"maxUnacked": "7", "routerMaxConcurrency": "5", "bundle": "false"}
    # When settings are read
    settings = StackSettings.from_context(FakeContext(context))
    # Then each key sets its field, converted to the field's type
    assert settings.max_unacked == 7
    assert settings.router_max_concurrency == 5
    assert settings.bundle is False


def test_the_prod_stage_retains_data_unless_told_otherwise() -> None:
    assert StackSettings.from_context(FakeContext({"stage": "prod"})).retain is True
    assert (
        StackSettings.from_context(FakeContext({"stage": "prod", "retain": "false"})).retain
        is False
    )


@pytest.mark.parametrize(
    "context",
    [
        {"stage": "no spaces"},
        {"maxUnacked": "many"},
        {"deliveryMaxConcurrency": "1"},
        {"routerBatchSize": "100"},
        {"commandsMaxConcurrency": "1"},
        {"commandsBatchSize": "20"},
        {"commandsReservedConcurrency": "10"},
        {"fanOutConcurrency": "0"},
        {"fanOutConcurrency": "17"},
        {"presenceChunk": "0"},
        {"bundle": "maybe"},
        {"routerReservedConcurrency": "10"},
        {"reservedConcurrency": "true", "deliveryReservedConcurrency": "49"},
        {"connectReservedConcurrency": "-1"},
        {"domainName": "ws.example.com"},
        {"certificateArn": "arn:aws:acm:eu-west-1:123456789012:certificate/abc"},
        {
            "domainName": "Not A Name",
            "certificateArn": "arn:aws:acm:eu-west-1:123456789012:certificate/abc",
        },
        {"domainName": "ws.example.com", "certificateArn": "arn:aws:iam::123456789012:role/x"},
        {"hostedZoneId": "Z123"},
        {
            "domainName": "ws.example.com",
            "certificateArn": "arn:aws:acm:eu-west-1:123456789012:certificate/abc",
            "hostedZoneId": "Z123",
            "hostedZoneName": "other.org",
        },
    ],
)
def test_a_value_aws_would_refuse_fails_at_synth(context: dict[str, str]) -> None:
    with pytest.raises(InvalidSettingError):
        StackSettings.from_context(FakeContext(context))


def test_reserved_concurrency_is_opt_in_with_defaults_for_the_connection_path() -> None:
    # Given no context, Then no function has a reservation
    assert StackSettings().reserved_concurrency_of("connect") is None
    # Given reservedConcurrency=true and one explicit number
    settings = StackSettings.from_context(
        FakeContext({"reservedConcurrency": "true", "connectReservedConcurrency": "80"})
    )
    # Then the explicit number wins, the others get the defaults, the workers none
    assert settings.reserved_concurrency_of("connect") == 80
    assert settings.reserved_concurrency_of("authorizer") == 50
    assert settings.reserved_concurrency_of("disconnect") == 50
    assert settings.reserved_concurrency_of("router") is None


def test_a_worker_reservation_below_its_mapping_concurrency_names_both_settings() -> None:
    with pytest.raises(InvalidSettingError) as refused:
        StackSettings.from_context(FakeContext({"routerReservedConcurrency": "10"}))
    assert "routerMaxConcurrency=20 exceeds routerReservedConcurrency=10" in str(refused.value)
