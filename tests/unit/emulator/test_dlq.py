"""What ``make dlq`` prints about a dead letter (pure: no server, no moto)."""

from __future__ import annotations

import json

from emulator.dlq import summarize

POISON = {
    "kind": "command",
    "cid": "cid-42",
    "tenant": "acme",
    "client": "c1",
    "msg": {"action": "command", "id": "k1", "name": "click", "args": {"x": "y" * 500}},
    "poison": True,
}


def test_summary_names_kind_tenant_cid_and_sizes_not_payloads() -> None:
    text = summarize(json.dumps(POISON))
    assert "kind=command" in text and "tenant=acme" in text and "cid=cid-42" in text
    assert "msg.id=k1" in text and "bytes" in text
    assert "y" * 100 not in text
    assert summarize("\x1b[2Jraw").startswith("not an envelope (7 bytes): ?[2Jraw")
