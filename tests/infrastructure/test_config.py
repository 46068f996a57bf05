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
        {"bundle": "maybe"},
    ],
)
def test_a_value_aws_would_refuse_fails_at_synth(context: dict[str, str]) -> None:
    with pytest.raises(InvalidSettingError):
        StackSettings.from_context(FakeContext(context))
