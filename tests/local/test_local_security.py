"""Nothing of local mode is readable or writable from a web page: SigV4 or 403, no CORS."""

from __future__ import annotations

import asyncio
import json
from types import ModuleType

import aiohttp
import boto3
import pytest
from botocore.exceptions import ClientError
from emu_fixture.testkit import connect, connection_id, management

from emulator.sigv4 import Credentials
from emulator.testing import RunningGateway

EVIL = {"Origin": "https://evil.example", "Referer": "https://evil.example/page"}


def no_cors(response: aiohttp.ClientResponse) -> bool:
    return not any(name.lower().startswith("access-control-") for name in response.headers)


async def test_given_open_connection_when_page_posts_unsigned_then_403_and_nothing_arrives(
    gw: RunningGateway, recorder: ModuleType
) -> None:
    async with connect(gw) as ws:
        cid = await connection_id(recorder)
        # When a web page POSTs to @connections (a "simple" request: no preflight)
        async with (
            aiohttp.ClientSession() as http,
            http.post(
                f"{gw.http_url}/@connections/{cid}",
                data=b"from a web page",
                headers={**EVIL, "Content-Type": "text/plain"},
            ) as response,
        ):
            body = await response.json(content_type=None)
            # Then it is refused as AWS refuses it, readable by no page
            assert response.status == 403
            assert body == {"message": "Missing Authentication Token"}
            assert no_cors(response)
        # And nothing reached the socket: the next frame is a signed post's
        await asyncio.to_thread(management(gw).post_to_connection, ConnectionId=cid, Data=b"ok")
        assert await asyncio.wait_for(ws.recv(), 10) == "ok"


@pytest.mark.parametrize("method", ["GET", "DELETE"])
async def test_given_open_connection_when_unsigned_get_or_delete_then_403(
    gw: RunningGateway, recorder: ModuleType, method: str
) -> None:
    async with connect(gw) as ws:
        cid = await connection_id(recorder)
        async with (
            aiohttp.ClientSession() as http,
            http.request(method, f"{gw.http_url}/@connections/{cid}", headers=EVIL) as response,
        ):
            assert response.status == 403
            assert no_cors(response)
        # The connection is still open and unaffected
        await ws.send('{"action":"ping"}')
        assert await asyncio.wait_for(ws.recv(), 10) == '{"action":"pong"}'


async def test_given_open_connection_when_signed_with_other_credentials_then_refused(
    gw: RunningGateway, recorder: ModuleType
) -> None:
    other = Credentials.generate()
    forged = boto3.client(
        "apigatewaymanagementapi",
        endpoint_url=gw.http_url,
        region_name="us-east-1",
        aws_access_key_id=other.access_key,
        aws_secret_access_key=other.secret_key,
    )
    wrong_secret = boto3.client(
        "apigatewaymanagementapi",
        endpoint_url=gw.http_url,
        region_name="us-east-1",
        aws_access_key_id=gw.credentials.access_key,
        aws_secret_access_key=other.secret_key,
    )
    async with connect(gw) as ws:
        cid = await connection_id(recorder)
        for api, code in (
            (forged, "UnrecognizedClientException"),
            (wrong_secret, "InvalidSignatureException"),
        ):
            with pytest.raises(ClientError) as caught:
                await asyncio.to_thread(api.post_to_connection, ConnectionId=cid, Data=b"forged")
            assert caught.value.response["ResponseMetadata"]["HTTPStatusCode"] == 403
            assert caught.value.response["Error"]["Code"] == code
        await asyncio.to_thread(management(gw).post_to_connection, ConnectionId=cid, Data=b"ok")
        assert await asyncio.wait_for(ws.recv(), 10) == "ok"


@pytest.mark.parametrize("path", ["/dev/@connections/abc", "/dev", "/"])
async def test_given_gateway_when_preflight_then_refused_without_cors(
    gw: RunningGateway, path: str
) -> None:
    async with (
        aiohttp.ClientSession() as http,
        http.options(
            f"http://127.0.0.1:{gw.port}{path}",
            headers={
                **EVIL,
                "Access-Control-Request-Method": "POST",
                "Access-Control-Request-Headers": "authorization,x-amz-date",
            },
        ) as response,
    ):
        assert response.status == 403
        assert no_cors(response)


async def test_given_moto_when_page_reads_the_signing_key_unsigned_then_refused(
    gw: RunningGateway,
) -> None:
    # Given the secret holding the signing key, and its id
    secret = (await asyncio.to_thread(gw.aws("secretsmanager").list_secrets))["SecretList"][0]
    # When a web page asks moto for it without a signature
    async with (
        aiohttp.ClientSession() as http,
        http.post(
            gw.system.moto.endpoint + "/",
            data=json.dumps({"SecretId": secret["ARN"]}),
            headers={
                **EVIL,
                "Content-Type": "text/plain",
                "X-Amz-Target": "secretsmanager.GetSecretValue",
            },
        ) as response,
    ):
        text = await response.text()
        # Then moto refuses, and says nothing a page could read
        assert response.status == 403
        assert no_cors(response)
    assert gw.system.signing_key not in text
    assert "MissingAuthenticationToken" in text


@pytest.mark.parametrize(
    "path", ["/moto-api/", "/moto-api/data.json", "/?Action=ListQueues", "/123456789012/q"]
)
async def test_given_moto_when_unsigned_get_then_refused(gw: RunningGateway, path: str) -> None:
    async with (
        aiohttp.ClientSession() as http,
        http.get(gw.system.moto.endpoint + path, headers=EVIL) as response,
    ):
        assert response.status == 403
        assert no_cors(response)


async def test_given_moto_when_preflight_then_refused_without_cors(gw: RunningGateway) -> None:
    async with (
        aiohttp.ClientSession() as http,
        http.options(
            gw.system.moto.endpoint + "/",
            headers={
                **EVIL,
                "Access-Control-Request-Method": "POST",
                "Access-Control-Request-Headers": "authorization,content-type,x-amz-target",
            },
        ) as response,
    ):
        assert response.status == 403
        assert no_cors(response)


async def test_given_local_credentials_then_boto3_works_and_others_are_refused(
    gw: RunningGateway,
) -> None:
    # The local credentials work (as the handlers and our own clients use them)
    secrets = (await asyncio.to_thread(gw.aws("secretsmanager").list_secrets))["SecretList"]
    assert secrets
    queues = (await asyncio.to_thread(gw.aws("sqs").list_queues)).get("QueueUrls", [])
    assert queues
    # Anything else is refused
    other = Credentials.generate()
    stranger = boto3.client(
        "sqs",
        endpoint_url=gw.system.moto.endpoint,
        region_name="us-east-1",
        aws_access_key_id=other.access_key,
        aws_secret_access_key=other.secret_key,
    )
    with pytest.raises(ClientError) as caught:
        await asyncio.to_thread(stranger.list_queues)
    assert caught.value.response["ResponseMetadata"]["HTTPStatusCode"] == 403


def test_moto_listens_on_loopback_only(gw: RunningGateway) -> None:
    assert gw.system.moto.endpoint.startswith("http://127.0.0.1:")
