"""Settings are read once, precisely, and strictly when asked to."""

from __future__ import annotations

import pytest

from functions.models.settings import GatewaySettings, MissingSettingError

REQUIRED = {
    "TABLE_NAME": "t",
    "BUS_QUEUE_URL": "b",
    "DELIVERY_QUEUE_URL": "d",
    "COMMAND_QUEUE_URL": "k",
    "CALLBACK_URL": "https://x/dev",
}


def test_defaults_apply_when_not_strict(monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in REQUIRED.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("MAX_UNACKED", raising=False)
    monkeypatch.delenv("TABRELAY_STRICT_SETTINGS", raising=False)
    assert GatewaySettings.from_env().max_unacked == 100


def test_strict_mode_requires_every_setting(monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in REQUIRED.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("MAX_UNACKED", raising=False)
    monkeypatch.setenv("TABRELAY_STRICT_SETTINGS", "1")
    with pytest.raises(MissingSettingError, match="MAX_UNACKED"):
        GatewaySettings.from_env()


def test_a_missing_required_setting_is_named(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("TABLE_NAME", raising=False)
    with pytest.raises(MissingSettingError, match="TABLE_NAME"):
        GatewaySettings.from_env()


def test_a_non_integer_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in REQUIRED.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("MAX_UNACKED", "lots")
    with pytest.raises(MissingSettingError, match="MAX_UNACKED must be an integer"):
        GatewaySettings.from_env()
