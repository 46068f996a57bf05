"""DynamoDB adapter of the connection registry and flow control.

One table, string keys ``pk``/``sk``, TTL attribute ``ttl`` (the item layout is
documented in ``docs/architecture.md``). Every method is a GetItem, a Query on
one partition, or a (conditional) write on known keys: nothing Scans, so the
calls per message do not depend on how many connections exist. Reads that
route messages are eventually consistent (half price); reads that decide
flow control are strongly consistent.
"""

from __future__ import annotations

import base64
import hashlib
import time
from collections.abc import Callable, Iterable
from typing import Any, cast

from botocore.exceptions import ClientError

from functions.logic.ports import (
    AckOutcome,
    CommandKey,
    ConnectionGoneError,
    ConnectionRecord,
    FanOut,
    Identity,
    PendingCommand,
    Recipient,
    Reservation,
    combine_recipients,
)

__all__ = ["DynamoRegistry"]

_META = "META"
_ALL = "*"
_DROPPED = "~dropped#"


def _conn_pk(connection_id: str) -> str:
    return f"C#{connection_id}"


def _client_key(tenant: str, role: str, client_id: str) -> dict[str, Any]:
    return {"pk": {"S": f"T#{tenant}"}, "sk": {"S": f"{role}#{client_id}"}}


def _fanout_key(tenant: str, browser: str, connection_id: str) -> dict[str, Any]:
    return {"pk": {"S": f"S#{tenant}#{browser}"}, "sk": {"S": connection_id}}


def _meta_key(connection_id: str) -> dict[str, Any]:
    return {"pk": {"S": _conn_pk(connection_id)}, "sk": {"S": _META}}


def _dropped_key(tenant: str, browser: str, connection_id: str) -> dict[str, Any]:
    # In the browser's fan-out partition, which routing reads anyway: the mark
    # costs no read; "~" sorts after every connection id.
    return {"pk": {"S": f"S#{tenant}#{browser}"}, "sk": {"S": f"{_DROPPED}{connection_id}"}}


def _pair_key(consumer: str, browser: str) -> dict[str, Any]:
    return {"pk": {"S": _conn_pk(consumer)}, "sk": {"S": f"B#{browser}"}}


def _command_key(key: CommandKey) -> dict[str, Any]:
    return {"pk": {"S": f"K#{key.tenant}#{key.target_client}"}, "sk": {"S": key.command_id}}


def _slot(command_id: str) -> str:
    """A command's entry in its browser's in-flight set: 16 characters whatever
    the id's length, so the set stays small (1.6 KB at the default bound of 100)."""
    digest = hashlib.blake2b(command_id.encode(), digest_size=12).digest()
    return base64.urlsafe_b64encode(digest).decode()


def _n(value: int) -> dict[str, str]:
    return {"N": str(value)}


def _conditional_failed(error: ClientError) -> bool:
    return bool(error.response["Error"]["Code"] == "ConditionalCheckFailedException")


def _num(item: dict[str, Any], name: str, default: int = 0) -> int:
    value = item.get(name)
    return int(value["N"]) if value else default


class DynamoRegistry:
    """Implements :class:`~functions.logic.ports.Registry` and
    :class:`~functions.logic.ports.FlowControl` on one DynamoDB table.

    ``client`` is a boto3 DynamoDB client (injected: tests pass moto's).
    """

    def __init__(
        self, client: Any, table_name: str, *, clock: Callable[[], float] = time.time
    ) -> None:
        self._db = client
        self._table = table_name
        self._clock = clock

    # -- helpers ------------------------------------------------------------------

    def _live(self, item: dict[str, Any]) -> bool:
        """TTL deletes are lazy (up to days): an expired item counts as absent."""
        return _num(item, "ttl", default=2**62) > self._clock()

    def _query(self, pk: str, prefix: str | None = None) -> list[dict[str, Any]]:
        condition = "pk = :pk"
        values: dict[str, Any] = {":pk": {"S": pk}}
        if prefix is not None:
            condition += " AND begins_with(sk, :prefix)"
            values[":prefix"] = {"S": prefix}
        items: list[dict[str, Any]] = []
        kwargs: dict[str, Any] = {
            "TableName": self._table,
            "KeyConditionExpression": condition,
            "ExpressionAttributeValues": values,
        }
        while True:
            page = self._db.query(**kwargs)
            items.extend(page.get("Items", []))
            if "LastEvaluatedKey" not in page:
                return items
            kwargs["ExclusiveStartKey"] = page["LastEvaluatedKey"]

    def _delete_keys(self, keys: Iterable[dict[str, Any]]) -> None:
        pending = [{"DeleteRequest": {"Key": key}} for key in keys]
        while pending:
            batch, pending = pending[:25], pending[25:]
            response = self._db.batch_write_item(RequestItems={self._table: batch})
            pending.extend(response.get("UnprocessedItems", {}).get(self._table, []))

    @staticmethod
    def _record(item: dict[str, Any], connection_id: str) -> ConnectionRecord:
        subs = item.get("subs")
        return ConnectionRecord(
            identity=Identity(
                connection_id=connection_id,
                tenant=item["tenant"]["S"],
                role=cast(Any, item["role"]["S"]),
                client_id=item["client_id"]["S"],
            ),
            connected_at=_num(item, "connected_at"),
            acks=bool(item.get("acks", {}).get("BOOL", False)),
            subscriptions=None if subs is None else frozenset(subs.get("SS", [])) - {""},
        )

    # -- registry -----------------------------------------------------------------

    def register(self, record: ConnectionRecord, ttl: int, window: int) -> str | None:
        ident = record.identity
        self._db.put_item(
            TableName=self._table,
            Item={
                **_meta_key(ident.connection_id),
                "tenant": {"S": ident.tenant},
                "role": {"S": ident.role},
                "client_id": {"S": ident.client_id},
                "connected_at": _n(record.connected_at),
                "acks": {"BOOL": record.acks},
                "sent": _n(0),
                "acked": _n(0),
                "room": _n(window),
                "ttl": _n(ttl),
            },
        )
        if ident.role == "consumer":
            self._put_fanout(ident, _ALL, record.acks, ttl)
        old = self._db.put_item(
            TableName=self._table,
            Item={
                **_client_key(ident.tenant, ident.role, ident.client_id),
                "connection_id": {"S": ident.connection_id},
                "connected_at": _n(record.connected_at),
                "ttl": _n(ttl),
            },
            ReturnValues="ALL_OLD",
        ).get("Attributes")
        if old and old["connection_id"]["S"] != ident.connection_id and self._live(old):
            return str(old["connection_id"]["S"])
        return None

    def _put_fanout(self, ident: Identity, browser: str, acks: bool, ttl: int) -> None:
        self._db.put_item(
            TableName=self._table,
            Item={
                **_fanout_key(ident.tenant, browser, ident.connection_id),
                "client_id": {"S": ident.client_id},
                "acks": {"BOOL": acks},
                "ttl": _n(ttl),
            },
        )

    def unregister(self, connection_id: str) -> tuple[ConnectionRecord | None, bool]:
        old = self._db.delete_item(
            TableName=self._table, Key=_meta_key(connection_id), ReturnValues="ALL_OLD"
        ).get("Attributes")
        rest = self._query(_conn_pk(connection_id))
        self._delete_keys({"pk": i["pk"], "sk": i["sk"]} for i in rest)
        if not old:
            return None, False
        record = self._record(old, connection_id)
        ident = record.identity
        subs = record.subscriptions if record.subscriptions is not None else {_ALL}
        if ident.role == "consumer":
            self._delete_keys(_fanout_key(ident.tenant, b, connection_id) for b in subs)
        try:
            self._db.delete_item(
                TableName=self._table,
                Key=_client_key(ident.tenant, ident.role, ident.client_id),
                ConditionExpression="connection_id = :c",
                ExpressionAttributeValues={":c": {"S": connection_id}},
            )
        except ClientError as error:
            if not _conditional_failed(error):
                raise
            return record, False  # a newer connection of the same client owns the index
        return record, True

    def get(self, connection_id: str) -> ConnectionRecord | None:
        item = self._db.get_item(
            TableName=self._table, Key=_meta_key(connection_id), ConsistentRead=True
        ).get("Item")
        if not item or not self._live(item):
            return None
        return self._record(item, connection_id)

    def lookup_client(self, tenant: str, role: str, client_id: str) -> str | None:
        item = self._db.get_item(
            TableName=self._table, Key=_client_key(tenant, role, client_id)
        ).get("Item")
        if not item or not self._live(item):
            return None
        return str(item["connection_id"]["S"])

    def list_clients(self, tenant: str, role: str) -> list[tuple[str, str, int]]:
        prefix = f"{role}#"
        return [
            (i["sk"]["S"][len(prefix) :], i["connection_id"]["S"], _num(i, "connected_at"))
            for i in self._query(f"T#{tenant}", prefix)
            if self._live(i)
        ]

    def list_clients_page(
        self, tenant: str, role: str, *, after: str | None, limit: int
    ) -> tuple[list[tuple[str, int]], str | None]:
        # One Query of at most ``limit`` items: the reply to a page stays bounded
        # however many clients the tenant has. The start key is built here from
        # the caller's tenant, so a client id cannot lead into another partition.
        prefix = f"{role}#"
        kwargs: dict[str, Any] = {
            "TableName": self._table,
            "KeyConditionExpression": "pk = :pk AND begins_with(sk, :prefix)",
            "ExpressionAttributeValues": {":pk": {"S": f"T#{tenant}"}, ":prefix": {"S": prefix}},
            "ProjectionExpression": "sk, connected_at, #ttl",
            "ExpressionAttributeNames": {"#ttl": "ttl"},
            "Limit": limit,
        }
        if after is not None:
            kwargs["ExclusiveStartKey"] = _client_key(tenant, role, after)
        page = self._db.query(**kwargs)
        clients = [
            (i["sk"]["S"][len(prefix) :], _num(i, "connected_at"))
            for i in page.get("Items", [])
            if self._live(i)
        ]
        last = page.get("LastEvaluatedKey")
        return clients, None if last is None else str(last["sk"]["S"][len(prefix) :])

    def set_subscriptions(
        self, record: ConnectionRecord, subscriptions: frozenset[str], ttl: int
    ) -> None:
        """Replace the set; crash-safe: the meta item names every fan-out item
        that may exist before it is written, so ``unregister`` always finds it."""
        ident = record.identity
        old = record.subscriptions if record.subscriptions is not None else frozenset({_ALL})
        added = subscriptions - old
        if added and not self._write_subs(ident.connection_id, old | subscriptions):
            return  # gone: unregister already ran, nothing was written
        for browser in sorted(added):
            self._put_fanout(ident, browser, record.acks, ttl)
        self._delete_keys(
            _fanout_key(ident.tenant, b, ident.connection_id) for b in sorted(old - subscriptions)
        )
        if not self._write_subs(ident.connection_id, subscriptions):
            # $disconnect ran meanwhile and may have missed what was just written.
            self._delete_keys(
                _fanout_key(ident.tenant, b, ident.connection_id) for b in sorted(added)
            )

    def _write_subs(self, connection_id: str, subscriptions: frozenset[str]) -> bool:
        """Store the set on the meta item; False when the connection is gone."""
        try:
            # A DynamoDB set cannot be empty: "" marks "subscribed to nothing".
            self._db.update_item(
                TableName=self._table,
                Key=_meta_key(connection_id),
                UpdateExpression="SET subs = :s",
                ConditionExpression="attribute_exists(pk)",
                ExpressionAttributeValues={":s": {"SS": sorted(subscriptions) or [""]}},
            )
        except ClientError as error:
            if _conditional_failed(error):
                return False
            raise
        return True

    def recipients(self, tenant: str, browser_client_id: str) -> list[Recipient]:
        return combine_recipients(
            self.fan_out_partition(tenant, browser_client_id), self.fan_out_partition(tenant, _ALL)
        )

    def fan_out_partition(self, tenant: str, browser: str) -> FanOut:
        recipients: list[Recipient] = []
        dropped: set[str] = set()
        for item in self._query(f"S#{tenant}#{browser}"):
            if not self._live(item):
                continue
            connection_id = item["sk"]["S"]
            if connection_id.startswith(_DROPPED):
                dropped.add(connection_id[len(_DROPPED) :])
                continue
            recipients.append(
                Recipient(
                    connection_id=connection_id,
                    client_id=item["client_id"]["S"],
                    acks=bool(item.get("acks", {}).get("BOOL", False)),
                )
            )
        return FanOut(tuple(recipients), frozenset(dropped))

    # -- commands -----------------------------------------------------------------

    def _pending(self, item: dict[str, Any], tenant: str, target: str) -> PendingCommand:
        claimed = {
            int(name[1:]): value["S"]
            for name, value in item.items()
            if name[:1] == "p" and name[1:].isdigit()
        }
        return PendingCommand(
            tenant=tenant,
            target_client=target,
            command_id=item["sk"]["S"],
            issuer_connection=item["issuer_connection"]["S"],
            issuer_client=item["issuer_client"]["S"],
            target_connection=item.get("target_connection", {}).get("S", ""),
            cid=item.get("cid", {}).get("S", ""),
            sent=bool(item.get("sent", {}).get("BOOL", False)),
            parts=_num(item, "parts") if "parts" in item else None,
            claimed=claimed,
            posted=frozenset(int(n) for n in item.get("posted", {}).get("NS", [])),
            ended_by=item.get("ended_by", {}).get("S"),
            code=item.get("code", {}).get("S"),
            answer=item.get("answer", {}).get("S"),
            delivered=bool(item.get("delivered", {}).get("BOOL", False)),
        )

    def _update_command(self, key: CommandKey, **kwargs: Any) -> tuple[bool, PendingCommand | None]:
        """A conditional update of a command's item: ``(True, item after)`` when it
        applied, ``(False, item as it is)`` when the condition failed."""
        try:
            item = self._db.update_item(
                TableName=self._table,
                Key=_command_key(key),
                ReturnValues="ALL_NEW",
                ReturnValuesOnConditionCheckFailure="ALL_OLD",
                **kwargs,
            )["Attributes"]
        except ClientError as error:
            if not _conditional_failed(error):
                raise
            old = error.response.get("Item")
            if not old or not self._live(old):
                return False, None
            return False, self._pending(old, key.tenant, key.target_client)
        return True, self._pending(item, key.tenant, key.target_client)

    def open_command(self, command: PendingCommand, ttl: int) -> PendingCommand | None:
        item: dict[str, Any] = {
            **_command_key(command.key),
            "issuer_connection": {"S": command.issuer_connection},
            "issuer_client": {"S": command.issuer_client},
            "cid": {"S": command.cid},
            "ttl": _n(ttl),
        }
        if command.target_connection:
            item["target_connection"] = {"S": command.target_connection}
        if command.ended_by is not None:  # refused when sent: born ended, answer recorded
            item["ended_by"] = {"S": command.ended_by}
            item["code"] = {"S": command.code or ""}
            if command.answer is not None:
                item["answer"] = {"S": command.answer}
        try:
            self._db.put_item(
                TableName=self._table,
                Item=item,
                # An item whose TTL passed is absent, even before DynamoDB deletes it.
                ConditionExpression="attribute_not_exists(pk) OR #ttl < :now",
                ExpressionAttributeNames={"#ttl": "ttl"},
                ExpressionAttributeValues={":now": _n(int(self._clock()))},
                ReturnValuesOnConditionCheckFailure="ALL_OLD",
            )
        except ClientError as error:
            if not _conditional_failed(error):
                raise
            existing = error.response.get("Item") or {}
            return self._pending(existing, command.tenant, command.target_client)
        return None

    def get_command(self, key: CommandKey) -> PendingCommand | None:
        item = self._db.get_item(
            TableName=self._table,
            Key=_command_key(key),
            ConsistentRead=True,
        ).get("Item")
        if not item or not self._live(item):
            return None
        return self._pending(item, key.tenant, key.target_client)

    def claim_send(self, key: CommandKey) -> tuple[bool, PendingCommand | None]:
        return self._update_command(
            key,
            UpdateExpression="SET sent = :yes",
            ConditionExpression=(
                "attribute_exists(pk) AND attribute_not_exists(ended_by) "
                "AND attribute_not_exists(sent)"
            ),
            ExpressionAttributeValues={":yes": {"BOOL": True}},
        )

    def claim_part(
        self, key: CommandKey, *, part: int, parts: int, cid: str, ends: bool
    ) -> tuple[bool, PendingCommand | None]:
        update = "SET #part = :cid, parts = :parts"
        values: dict[str, Any] = {":cid": {"S": cid}, ":parts": _n(parts)}
        names = {"#part": f"p{part}"}
        if ends:
            update += ", ended_by = :by, #code = :code"
            values |= {":by": {"S": "result"}, ":code": {"S": "result"}}
            names["#code"] = "code"
        return self._update_command(
            key,
            UpdateExpression=update,
            ConditionExpression=(
                "attribute_exists(pk) AND attribute_not_exists(ended_by) "
                "AND (attribute_not_exists(parts) OR parts = :parts) "
                "AND attribute_not_exists(#part)"
            ),
            ExpressionAttributeNames=names,
            ExpressionAttributeValues=values,
        )

    def end_command(
        self, key: CommandKey, *, by: str, code: str, answer: str | None
    ) -> tuple[bool, PendingCommand | None]:
        update = "SET ended_by = :by, #code = :code"
        values: dict[str, Any] = {":by": {"S": by}, ":code": {"S": code}}
        if answer is not None:
            update += ", answer = :answer"
            values[":answer"] = {"S": answer}
        return self._update_command(
            key,
            UpdateExpression=update,
            ConditionExpression="attribute_exists(pk) AND attribute_not_exists(ended_by)",
            ExpressionAttributeNames={"#code": "code"},
            ExpressionAttributeValues=values,
        )

    def mark_part_posted(self, key: CommandKey, part: int) -> None:
        self._update_command(
            key,
            UpdateExpression="ADD posted :part",
            ConditionExpression="attribute_exists(pk)",
            ExpressionAttributeValues={":part": {"NS": [str(part)]}},
        )

    def mark_answered(self, key: CommandKey) -> None:
        self._update_command(
            key,
            UpdateExpression="SET delivered = :yes",
            ConditionExpression="attribute_exists(pk)",
            ExpressionAttributeValues={":yes": {"BOOL": True}},
        )

    def commands(self, tenant: str, target_client: str) -> list[PendingCommand]:
        return [
            self._pending(item, tenant, target_client)
            for item in self._query(f"K#{tenant}#{target_client}")
            if self._live(item)
        ]

    def count_inbound(self, connection_id: str, window: int, n: int, ttl: int) -> int:
        item = self._db.update_item(
            TableName=self._table,
            Key={"pk": {"S": _conn_pk(connection_id)}, "sk": {"S": f"R#{window}"}},
            UpdateExpression="ADD n :n SET #ttl = :ttl",
            ExpressionAttributeNames={"#ttl": "ttl"},
            ExpressionAttributeValues={":n": _n(n), ":ttl": _n(ttl)},
            ReturnValues="UPDATED_NEW",
        )["Attributes"]
        return _num(item, "n")

    # -- flow control -------------------------------------------------------------

    def reserve(self, connection_id: str, wanted: int) -> Reservation:
        want = wanted
        while want > 0:
            try:
                item = self._db.update_item(
                    TableName=self._table,
                    Key=_meta_key(connection_id),
                    UpdateExpression="SET sent = sent + :k, room = room - :k",
                    ConditionExpression="room >= :k",
                    ExpressionAttributeValues={":k": _n(want)},
                    ReturnValues="UPDATED_NEW",
                    ReturnValuesOnConditionCheckFailure="ALL_OLD",
                )["Attributes"]
            except ClientError as error:
                if not _conditional_failed(error):
                    raise
                old = error.response.get("Item")
                if not old:
                    raise ConnectionGoneError(connection_id) from None
                want = min(want - 1, _num(old, "room"))
                continue
            return Reservation(granted=want, first_dseq=_num(item, "sent") - want + 1)
        return Reservation(granted=0, first_dseq=0)

    def ack(self, connection_id: str, seq: int, bound: int) -> AckOutcome:
        try:
            self._db.update_item(
                TableName=self._table,
                Key=_meta_key(connection_id),
                UpdateExpression="SET acked = :s, room = :window - sent",
                ConditionExpression="acked < :s AND sent >= :s",
                ExpressionAttributeValues={":s": _n(seq), ":window": _n(seq + bound)},
                ReturnValuesOnConditionCheckFailure="ALL_OLD",
            )
        except ClientError as error:
            if not _conditional_failed(error):
                raise
            old = error.response.get("Item") or {}
            return "ahead" if seq > _num(old, "sent") else "stale"
        return "ok"

    def add_inflight(self, connection_id: str, command_id: str, bound: int) -> bool:
        # A set of command ids, not a counter: adding or removing an id twice (a
        # redelivered envelope) changes nothing, so the count never drifts.
        slot = _slot(command_id)
        try:
            self._db.update_item(
                TableName=self._table,
                Key=_meta_key(connection_id),
                UpdateExpression="ADD cmds :slot",
                ConditionExpression=(
                    "attribute_exists(pk) AND (attribute_not_exists(cmds) "
                    "OR size(cmds) < :bound OR contains(cmds, :one))"
                ),
                ExpressionAttributeValues={
                    ":slot": {"SS": [slot]},
                    ":one": {"S": slot},
                    ":bound": _n(bound),
                },
                ReturnValuesOnConditionCheckFailure="ALL_OLD",
            )
        except ClientError as error:
            if not _conditional_failed(error):
                raise
            if not error.response.get("Item"):
                raise ConnectionGoneError(connection_id) from None
            return False
        return True

    def release_inflight(self, connection_id: str, command_id: str) -> None:
        try:
            self._db.update_item(
                TableName=self._table,
                Key=_meta_key(connection_id),
                UpdateExpression="DELETE cmds :slot",
                ConditionExpression="attribute_exists(pk)",
                ExpressionAttributeValues={":slot": {"SS": [_slot(command_id)]}},
            )
        except ClientError as error:
            if not _conditional_failed(error):
                raise  # a gone connection needs nothing

    def inflight_commands(self, connection_id: str) -> int:
        """How many commands are in flight to a browser connection (tests, operators)."""
        item = (
            self._db.get_item(
                TableName=self._table, Key=_meta_key(connection_id), ConsistentRead=True
            ).get("Item")
            or {}
        )
        return len(item.get("cmds", {}).get("SS", []))

    def park(self, consumer_connection: str, browser_client: str, seq: int, ttl: int) -> bool:
        try:
            self._db.update_item(
                TableName=self._table,
                Key=_pair_key(consumer_connection, browser_client),
                UpdateExpression="SET parked = :s, #ttl = :ttl",
                ConditionExpression="attribute_not_exists(parked) OR parked <= :s",
                ExpressionAttributeNames={"#ttl": "ttl"},
                ExpressionAttributeValues={":s": _n(seq), ":ttl": _n(ttl)},
            )
        except ClientError as error:
            if _conditional_failed(error):
                return False
            raise
        return True

    def is_stale(self, consumer_connection: str, browser_client: str, seq: int) -> bool:
        item = (
            self._db.get_item(
                TableName=self._table,
                Key=_pair_key(consumer_connection, browser_client),
                ConsistentRead=True,
            ).get("Item")
            or {}
        )
        return seq < max(_num(item, "parked", -1), _num(item, "delivered", -1))

    def count_missed(self, consumer_connection: str, browser_client: str, ttl: int) -> None:
        self._db.update_item(
            TableName=self._table,
            Key=_pair_key(consumer_connection, browser_client),
            UpdateExpression="ADD missed :one SET #ttl = :ttl",
            ExpressionAttributeNames={"#ttl": "ttl"},
            ExpressionAttributeValues={":one": _n(1), ":ttl": _n(ttl)},
        )

    def release(self, connection_id: str, dseq: int, count: int = 1) -> None:
        last = dseq + count - 1
        try:
            # The newest slots: take them back, so the next deliveries reuse the numbers.
            self._db.update_item(
                TableName=self._table,
                Key=_meta_key(connection_id),
                UpdateExpression="SET sent = sent - :n, room = room + :n",
                ConditionExpression="sent = :last",
                ExpressionAttributeValues={":n": _n(count), ":last": _n(last)},
            )
            return
        except ClientError as error:
            if not _conditional_failed(error):
                raise
        try:
            # Later slots were taken meanwhile: leave a gap in the numbers (an ack
            # beyond it covers it) and free the room.
            self._db.update_item(
                TableName=self._table,
                Key=_meta_key(connection_id),
                UpdateExpression="SET room = room + :n",
                ConditionExpression="attribute_exists(pk) AND sent > :last",
                ExpressionAttributeValues={":n": _n(count), ":last": _n(last)},
            )
        except ClientError as error:
            if not _conditional_failed(error):
                raise  # a gone connection needs nothing

    def note_dropped(
        self, tenant: str, consumer_connection: str, browser_client: str, missed: int, ttl: int
    ) -> None:
        self._db.update_item(
            TableName=self._table,
            Key=_pair_key(consumer_connection, browser_client),
            UpdateExpression="ADD missed :n SET #ttl = :ttl",
            ExpressionAttributeNames={"#ttl": "ttl"},
            ExpressionAttributeValues={":n": _n(missed), ":ttl": _n(ttl)},
        )
        self._db.put_item(
            TableName=self._table,
            Item={**_dropped_key(tenant, browser_client, consumer_connection), "ttl": _n(ttl)},
        )

    def clear_dropped(self, tenant: str, consumer_connection: str, browser_client: str) -> None:
        self._db.delete_item(
            TableName=self._table, Key=_dropped_key(tenant, browser_client, consumer_connection)
        )

    def mark_delivered(self, consumer_connection: str, browser_client: str, seq: int) -> int:
        item = self._db.update_item(
            TableName=self._table,
            Key=_pair_key(consumer_connection, browser_client),
            UpdateExpression="SET delivered = :s, missed = :zero, #ttl = :ttl",
            ExpressionAttributeNames={"#ttl": "ttl"},
            ExpressionAttributeValues={
                ":s": _n(seq),
                ":zero": _n(0),
                ":ttl": _n(int(self._clock()) + 3 * 3600),
            },
            ReturnValues="UPDATED_OLD",
        ).get("Attributes", {})
        return _num(item, "missed")
