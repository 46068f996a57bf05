"""The extension in real headless Chromium against a fake gateway (protocol-level proofs).

Every frame the extension sends is checked against ``tabrelay.wire``
and the 32 KB frame limit by the fake gateway; each test ends by asserting
that no frame broke the contract.
"""

from __future__ import annotations

import base64
import json
import time
from pathlib import Path

import pytest

from .conftest import Launch
from .fakegateway import FakeGateway

pytestmark = pytest.mark.browser


def _unsigned_jwt(claims: dict[str, object]) -> str:
    # The fake gateway checks no signature; the extension only reads the claims.
    def part(obj: dict[str, object]) -> str:
        return base64.urlsafe_b64encode(json.dumps(obj).encode()).decode().rstrip("=")

    return f"{part({'alg': 'HS256', 'typ': 'JWT'})}.{part(claims)}.c2lnbmF0dXJl"


TOKEN = _unsigned_jwt(
    {"tenant": "acme", "role": "browser", "client_id": "chrome-1", "exp": int(time.time()) + 3600}
)


def config(gw: FakeGateway, **extra: object) -> dict[str, object]:
    return {"url": gw.url, "token": TOKEN, **extra}


async def test_given_configured_extension_when_page_loads_then_gateway_gets_valid_snapshot(
    pages: str, launch: Launch
) -> None:
    async with FakeGateway() as gw, launch(config(gw), f"{pages}/page1.html"):
        page = await gw.page(lambda p: p.title == "Page one")
        assert "not clicked" in page.html
        assert page.url == f"{pages}/page1.html"
        assert gw.tokens[0] == TOKEN
        assert gw.violations == []


async def test_given_page_when_click_by_selector_then_result_and_later_snapshot_show_change(
    pages: str, launch: Launch
) -> None:
    async with FakeGateway() as gw, launch(config(gw), f"{pages}/page1.html"):
        await gw.page(lambda p: p.title == "Page one")
        reply = await gw.command("click", {"selector": "#btn"})
        assert reply.ok, reply
        assert reply.value["tag"] == "button"
        await gw.page(lambda p: "clicked 1" in p.html)
        assert gw.violations == []


async def test_given_page_when_click_by_visible_text_then_that_element_is_clicked(
    pages: str, launch: Launch
) -> None:
    async with FakeGateway() as gw, launch(config(gw), f"{pages}/page1.html"):
        await gw.page(lambda p: p.title == "Page one")
        reply = await gw.command("click", {"text": "Press me"})
        assert reply.ok, reply
        await gw.page(lambda p: "clicked 1" in p.html)


async def test_given_page_when_selector_matches_nothing_then_element_not_found(
    pages: str, launch: Launch
) -> None:
    async with FakeGateway() as gw, launch(config(gw), f"{pages}/page1.html"):
        await gw.page(lambda p: p.title == "Page one")
        reply = await gw.command("click", {"selector": "#no-such-thing"})
        assert (reply.ok, reply.code) == (False, "element_not_found")
        assert "#no-such-thing" in (reply.error or "")


async def test_given_page_when_navigate_and_type_then_snapshots_show_page_and_text(
    pages: str, launch: Launch
) -> None:
    async with FakeGateway() as gw, launch(config(gw), f"{pages}/page1.html"):
        await gw.page(lambda p: p.title == "Page one")
        nav = await gw.command("navigate", {"url": f"{pages}/page2.html"})
        assert nav.ok, nav
        assert nav.value == {"url": f"{pages}/page2.html", "title": "Page two"}
        typed = await gw.command("type", {"selector": "#name", "text": "Ada Lovelace"})
        assert typed.ok, typed
        page = await gw.page(lambda p: "echo: Ada Lovelace" in p.html)
        # The typed value itself is in the snapshot, not only what the page echoed.
        assert 'value="Ada Lovelace"' in page.html
        assert gw.violations == []


async def test_given_password_field_when_filled_then_value_never_in_snapshot(
    pages: str, launch: Launch
) -> None:
    async with FakeGateway() as gw, launch(config(gw), f"{pages}/page2.html"):
        await gw.page(lambda p: p.title == "Page two")
        assert (await gw.command("fill", {"selector": "#secret", "text": "hunter2"})).ok
        assert (await gw.command("fill", {"selector": "#name", "text": "marker"})).ok
        page = await gw.page(lambda p: 'value="marker"' in p.html)
        assert "hunter2" not in page.html


async def test_given_form_when_select_option_and_press_enter_then_page_reacts(
    pages: str, launch: Launch
) -> None:
    async with FakeGateway() as gw, launch(config(gw), f"{pages}/page2.html"):
        await gw.page(lambda p: p.title == "Page two")
        chosen = await gw.command("select_option", {"selector": "#color", "label": "Green"})
        assert chosen.ok and chosen.value == {"values": ["g"]}, chosen
        assert (await gw.command("fill", {"selector": "#name", "text": "Grace"})).ok
        pressed = await gw.command("press_key", {"selector": "#name", "key": "Enter"})
        assert pressed.ok, pressed
        await gw.page(lambda p: "chosen g" in p.html and "submitted Grace" in p.html)


async def test_given_page_when_hover_and_scroll_then_page_reacts(
    pages: str, launch: Launch
) -> None:
    async with FakeGateway() as gw, launch(config(gw), f"{pages}/page1.html"):
        await gw.page(lambda p: p.title == "Page one")
        scrolled = await gw.command("scroll", {"selector": "#bottom"})
        assert scrolled.ok and scrolled.value["y"] > 1000, scrolled
        top = await gw.command("scroll", {"to": "top"})
        assert top.ok and top.value["y"] == 0, top
        by = await gw.command("scroll", {"y": 500})
        assert by.ok and by.value["y"] == 500, by
        assert (await gw.command("navigate", {"url": f"{pages}/page2.html"})).ok
        hovered = await gw.command("hover", {"selector": "#hover-target"})
        assert hovered.ok, hovered
        await gw.page(lambda p: ">hovered<" in p.html)


async def test_given_element_appearing_later_when_wait_for_then_ok(
    pages: str, launch: Launch
) -> None:
    async with FakeGateway() as gw, launch(config(gw), f"{pages}/page2.html"):
        await gw.page(lambda p: p.title == "Page two")
        assert (await gw.command("click", {"selector": "#later"})).ok
        waited = await gw.command("wait_for", {"selector": "#late"}, timeout=10)
        assert waited.ok, waited
        text = await gw.command("wait_for", {"text": "arrived late"}, timeout=10)
        assert text.ok, text


async def test_given_element_never_appearing_when_wait_for_then_timeout(
    pages: str, launch: Launch
) -> None:
    async with FakeGateway() as gw, launch(config(gw), f"{pages}/page1.html"):
        await gw.page(lambda p: p.title == "Page one")
        reply = await gw.command("wait_for", {"selector": "#never"}, timeout=2)
        assert (reply.ok, reply.code) == (False, "timeout")


async def test_given_unreachable_url_when_navigate_then_navigation_failed(
    pages: str, launch: Launch
) -> None:
    async with FakeGateway() as gw, launch(config(gw), f"{pages}/page1.html"):
        await gw.page(lambda p: p.title == "Page one")
        # A port that was just free: nothing listens there.
        closed = FakeGateway()
        await closed.start()
        port = closed.port
        await closed.stop()
        reply = await gw.command("navigate", {"url": f"http://127.0.0.1:{port}/"})
        assert (reply.ok, reply.code) == (False, "navigation_failed")
        assert "ERR_CONNECTION_REFUSED" in (reply.error or "")


async def test_given_history_when_back_and_forward_then_pages_follow(
    pages: str, launch: Launch
) -> None:
    async with FakeGateway() as gw, launch(config(gw), f"{pages}/page1.html"):
        await gw.page(lambda p: p.title == "Page one")
        assert (await gw.command("navigate", {"url": f"{pages}/page2.html"})).ok
        back = await gw.command("back")
        assert back.ok and back.value["title"] == "Page one", back
        forward = await gw.command("forward")
        assert forward.ok and forward.value["title"] == "Page two", forward
        reload = await gw.command("reload")
        assert reload.ok and reload.value["title"] == "Page two", reload


async def test_given_unknown_command_then_unknown_command_error(pages: str, launch: Launch) -> None:
    async with FakeGateway() as gw, launch(config(gw), f"{pages}/page1.html"):
        await gw.page(lambda p: p.title == "Page one")
        reply = await gw.command("teleport")
        assert (reply.ok, reply.code) == (False, "unknown_command")


async def test_given_same_command_id_delivered_twice_then_it_runs_once(
    pages: str, launch: Launch
) -> None:
    async with FakeGateway() as gw, launch(config(gw), f"{pages}/page1.html"):
        await gw.page(lambda p: p.title == "Page one")
        # When the same delivery arrives twice (SQS is at-least-once)...
        await gw.send_command("click", {"selector": "#btn"}, id="dup-1")
        await gw.send_command("click", {"selector": "#btn"}, id="dup-1")
        # ...and the first copy has been answered (commands run concurrently: a later
        # command may well be answered before it, so wait for this answer itself)...
        await gw.wait_for(lambda: gw.replies("dup-1"))
        # ...and a later, distinct command has been answered (so both copies were read:
        # the extension reads frames in order and drops a copy as it reads it)...
        fresh = await gw.command("snapshot")
        assert fresh.ok, fresh
        # ...the button was pressed once and there is one result.
        page = await gw.page(lambda p: p.sid == fresh.value["sid"])
        assert ">clicked 1<" in page.html
        assert len(gw.replies("dup-1")) == 1


async def test_given_large_page_then_snapshot_comes_in_parts_each_within_a_frame(
    pages: str, launch: Launch
) -> None:
    async with FakeGateway() as gw, launch(config(gw), f"{pages}/big"):
        page = await gw.page(lambda p: p.title == "Big page", timeout=60)
        assert page.parts > 10
        assert "the end" in page.html and len(page.html) > 1_500_000
        assert max(gw.frame_sizes) <= 30_000
        assert gw.violations == []


async def test_given_parts_refused_for_rate_then_they_are_resent_and_snapshot_completes(
    pages: str, launch: Launch
) -> None:
    async with (
        FakeGateway(refuse_parts=frozenset({2, 5})) as gw,
        launch(config(gw), f"{pages}/big"),
    ):
        page = await gw.page(lambda p: p.title == "Big page", timeout=60)
        assert "the end" in page.html
        assert len(gw.refused) >= 2
        assert gw.violations == []


async def test_given_page_when_screenshot_then_png_in_parts_within_frames(
    pages: str, launch: Launch
) -> None:
    # A page full of text: its PNG is far larger than one frame.
    async with FakeGateway() as gw, launch(config(gw), f"{pages}/big"):
        await gw.page(lambda p: p.title == "Big page", timeout=60)
        reply = await gw.command("screenshot")
        assert reply.ok, reply
        assert reply.value["mime"] == "image/png"
        png = base64.b64decode(reply.value["data"])
        assert png.startswith(b"\x89PNG\r\n\x1a\n")
        assert reply.parts > 1
        assert max(gw.frame_sizes) <= 30_000
        assert gw.violations == []


async def test_given_scripts_off_by_default_when_evaluate_then_forbidden(
    pages: str, launch: Launch
) -> None:
    async with FakeGateway() as gw, launch(config(gw), f"{pages}/page1.html"):
        await gw.page(lambda p: p.title == "Page one")
        reply = await gw.command("evaluate", {"expression": "document.title"})
        assert (reply.ok, reply.code) == (False, "forbidden")


async def test_given_scripts_switched_on_when_evaluate_then_value_returned(
    pages: str, launch: Launch
) -> None:
    async with FakeGateway() as gw, launch(config(gw, allowScript=True), f"{pages}/page1.html"):
        await gw.page(lambda p: p.title == "Page one")
        reply = await gw.command("evaluate", {"expression": "document.title + '!'"})
        assert reply.ok and reply.value == "Page one!", reply


SECRET_FILE_TEXT = "local secret 7f3a"


def local_file(tmp_path: Path) -> str:
    """A file: URL of an HTML file holding a marker no snapshot may carry."""
    path = tmp_path / "secret.html"
    path.write_text(
        f"<html><head><title>Secret</title></head><body>{SECRET_FILE_TEXT}</body></html>"
    )
    return path.as_uri()


@pytest.mark.parametrize(
    "url",
    [
        "file:///etc/passwd",
        "FILE:///etc/hostname",
        "javascript:document.title='x'",
        "data:text/html,<title>data</title>",
        "chrome://version",
        "view-source:https://example.com/",
        "blob:https://example.com/0b6c",
        "about:version",
    ],
)
async def test_given_defaults_when_navigate_to_non_http_url_then_url_not_allowed(
    pages: str, launch: Launch, url: str
) -> None:
    async with FakeGateway() as gw, launch(config(gw), f"{pages}/page1.html"):
        await gw.page(lambda p: p.title == "Page one")
        reply = await gw.command("navigate", {"url": url})
        assert (reply.ok, reply.code) == (False, "url_not_allowed"), reply
        # The page did not change
        info = await gw.command("navigate", {"url": f"{pages}/page2.html"})
        assert info.ok and info.value["title"] == "Page two", info


async def test_given_defaults_when_navigate_to_non_url_then_bad_request(
    pages: str, launch: Launch
) -> None:
    async with FakeGateway() as gw, launch(config(gw), f"{pages}/page1.html"):
        await gw.page(lambda p: p.title == "Page one")
        reply = await gw.command("navigate", {"url": "not a url"})
        assert (reply.ok, reply.code) == (False, "bad_request"), reply


async def test_given_defaults_when_navigate_to_local_file_then_refused_and_never_sent(
    pages: str, launch: Launch, tmp_path: Path
) -> None:
    async with FakeGateway() as gw, launch(config(gw), f"{pages}/page1.html"):
        await gw.page(lambda p: p.title == "Page one")
        reply = await gw.command("navigate", {"url": local_file(tmp_path)})
        assert (reply.ok, reply.code) == (False, "url_not_allowed"), reply
        assert "allowFileUrls" in (reply.error or "")
        fresh = await gw.command("snapshot")
        assert fresh.ok and fresh.value["title"] == "Page one", fresh
        assert all(SECRET_FILE_TEXT not in p.html for p in gw.pages)


async def test_given_file_pages_allowed_when_navigate_to_local_file_then_not_refused(
    pages: str, launch: Launch, tmp_path: Path
) -> None:
    async with FakeGateway() as gw, launch(config(gw, allowFileUrls=True), f"{pages}/page1.html"):
        await gw.page(lambda p: p.title == "Page one")
        reply = await gw.command("navigate", {"url": local_file(tmp_path)})
        # Opened (Chrome may still withhold file access from the extension's
        # scripts: that is the user's second switch, not ours)
        assert reply.ok or reply.code != "url_not_allowed", reply


async def test_given_user_opened_a_local_file_when_snapshot_or_read_then_url_not_allowed(
    launch: Launch, tmp_path: Path
) -> None:
    async with FakeGateway() as gw, launch(config(gw), local_file(tmp_path)):
        await gw.wait_for(lambda: gw.connections >= 1)
        for name, args in (
            ("snapshot", {}),
            ("screenshot", {}),
            ("click", {"text": "local"}),
            ("wait_for", {"text": "local"}),
        ):
            reply = await gw.command(name, args)
            assert (reply.ok, reply.code) == (False, "url_not_allowed"), (name, reply)
        assert all(SECRET_FILE_TEXT not in p.html for p in gw.pages)


async def test_given_snapshot_command_then_fresh_snapshot_with_newer_seq(
    pages: str, launch: Launch
) -> None:
    async with FakeGateway() as gw, launch(config(gw), f"{pages}/page1.html"):
        first = await gw.page(lambda p: p.title == "Page one")
        reply = await gw.command("snapshot")
        assert reply.ok, reply
        assert reply.value["seq"] > first.seq
        await gw.page(lambda p: p.sid == reply.value["sid"])


async def test_given_connection_dropped_by_server_then_extension_reconnects_and_snapshots(
    pages: str, launch: Launch
) -> None:
    async with FakeGateway() as gw, launch(config(gw), f"{pages}/page1.html"):
        await gw.page(lambda p: p.title == "Page one")
        seen = len(gw.pages)
        await gw.drop_connections()
        await gw.wait_for(lambda: gw.connections >= 2, timeout=30)
        await gw.wait_for(lambda: len(gw.pages) > seen, timeout=30)


async def test_given_gateway_refusing_then_accepting_then_extension_reconnects_by_itself(
    pages: str, launch: Launch
) -> None:
    async with FakeGateway() as gw, launch(config(gw), f"{pages}/page1.html"):
        await gw.page(lambda p: p.title == "Page one")
        # When the gateway refuses handshakes for a while (several attempts)...
        gw.refusing = True
        await gw.drop_connections()
        await gw.wait_for(lambda: gw.handshakes_refused >= 3, timeout=45)
        # ...and then accepts again, the extension gets back by itself.
        gw.refusing = False
        await gw.wait_for(lambda: gw.connections >= 2, timeout=45)
        reply = await gw.command("click", {"selector": "#btn"})
        assert reply.ok, reply
        await gw.page(lambda p: "clicked 1" in p.html)


async def test_given_connected_extension_then_popup_says_connected(
    pages: str, launch: Launch, tmp_path: Path
) -> None:
    async with (
        FakeGateway() as gw,
        launch(config(gw), f"{pages}/page1.html") as browser,
    ):
        await gw.page(lambda p: p.title == "Page one")
        popup = await browser.open_page(
            f"chrome-extension://{browser.extension_id()}/popup.html", 370, 290
        )
        await browser.wait_until(
            popup,
            "document.body.dataset.ready === 'true'"
            " && document.getElementById('state').textContent.startsWith('Connected')",
        )
        state = await browser.evaluate(popup, "document.getElementById('state').textContent")
        assert state.startswith("Connected")
        assert await browser.evaluate(popup, "document.getElementById('client').textContent") == (
            "chrome-1"
        )
        shot = tmp_path / "popup.png"
        await browser.screenshot(popup, shot)
        assert shot.read_bytes().startswith(b"\x89PNG")


async def test_given_idle_page_when_past_service_worker_idle_limit_then_same_socket_alive(
    pages: str, launch: Launch
) -> None:
    # Chrome stops an idle MV3 service worker after 30 s; a one-way keepalive
    # after 20 s without a message keeps it (and its socket) alive. Two keepalives
    # = 40 s of idleness on one connection, and no pong-answered ping is needed.
    async with FakeGateway() as gw, launch(config(gw), f"{pages}/page1.html"):
        await gw.page(lambda p: p.title == "Page one")
        await gw.wait_for(lambda: gw.keepalives >= 2, timeout=90)
        assert gw.pings == 0  # the first liveness ping waits 2 minutes
        reply = await gw.command("click", {"selector": "#btn"})
        assert reply.ok, reply
        assert gw.connections == 1


async def test_given_worker_stopped_then_it_reconnects_and_never_reruns_a_command(
    pages: str, launch: Launch
) -> None:
    async with FakeGateway() as gw, launch(config(gw), f"{pages}/page1.html") as browser:
        await gw.page(lambda p: p.title == "Page one")
        await gw.send_command("click", {"selector": "#btn"}, id="once")
        await gw.wait_for(lambda: gw.replies("once"))
        # When Chrome stops the service worker (it does so to idle extensions)...
        await browser.stop_service_workers()
        # ...it starts again, reconnects by itself...
        await gw.wait_for(lambda: gw.connections >= 2, timeout=45)
        # ...and a redelivery of the command it ran before does not run again.
        await gw.send_command("click", {"selector": "#btn"}, id="once")
        fresh = await gw.command("snapshot")
        assert fresh.ok, fresh
        page = await gw.page(lambda p: p.sid == fresh.value["sid"])
        assert ">clicked 1<" in page.html
        assert len(gw.replies("once")) == 1


POPUP_STATE = "document.getElementById('state').textContent"
POPUP_REASON = "document.getElementById('reason').textContent"


async def test_given_gateway_down_then_popup_and_badge_say_reconnecting_with_next_attempt(
    pages: str, launch: Launch
) -> None:
    async with FakeGateway() as gw, launch(config(gw), f"{pages}/page1.html") as browser:
        await gw.page(lambda p: p.title == "Page one")
        await gw.stop()
        popup = await browser.open_page(
            f"chrome-extension://{browser.extension_id()}/popup.html", 370, 250
        )
        await browser.wait_until(popup, f"{POPUP_STATE}.startsWith('Reconnecting')")
        assert await browser.evaluate(popup, "chrome.action.getBadgeText({})") == "…"
        await browser.wait_until(popup, f"/next attempt in \\d+ s|trying now/.test({POPUP_STATE})")
        assert "connection closed" in await browser.evaluate(popup, POPUP_REASON) or (
            "could not connect" in await browser.evaluate(popup, POPUP_REASON)
        )


async def test_given_no_configuration_then_popup_and_badge_show_the_error(
    pages: str, launch: Launch
) -> None:
    async with launch(None, f"{pages}/page1.html") as browser:
        popup = await browser.open_page(
            f"chrome-extension://{browser.extension_id()}/popup.html", 370, 250
        )
        await browser.wait_until(popup, f"{POPUP_STATE} === 'Error'")
        assert "not configured" in await browser.evaluate(popup, POPUP_REASON)
        assert await browser.evaluate(popup, "chrome.action.getBadgeText({})") == "err"


async def test_given_non_ascii_page_then_snapshot_keeps_every_character(
    pages: str, launch: Launch
) -> None:
    async with FakeGateway() as gw, launch(config(gw), f"{pages}/unicode.html"):
        page = await gw.page(lambda p: p.title.startswith("Grüße"))
        assert page.title == 'Grüße "quoted" 😀'
        assert 'Ünïcödé — ✓ 😀 "quotes" \\ backslash' in page.html
        assert gw.violations == []


async def test_given_large_non_ascii_result_then_parts_join_to_the_exact_value(
    pages: str, launch: Launch
) -> None:
    # Multi-byte characters, surrogate pairs and JSON escapes in every slice.
    async with FakeGateway() as gw, launch(config(gw, allowScript=True), f"{pages}/page1.html"):
        await gw.page(lambda p: p.title == "Page one")
        reply = await gw.command("evaluate", {"expression": "'é\"😀\\\\'.repeat(20000)"})
        assert reply.ok, reply
        assert reply.value == 'é"😀\\' * 20000
        assert reply.parts > 1
        assert max(gw.frame_sizes) <= 30_000
        assert gw.violations == []


async def test_given_config_json_when_options_page_saves_another_gateway_then_it_wins(
    pages: str, launch: Launch
) -> None:
    async with (
        FakeGateway() as first,
        FakeGateway() as second,
        launch(config(first), f"{pages}/page1.html") as browser,
    ):
        await first.page(lambda p: p.title == "Page one")
        options = await browser.open_page(
            f"chrome-extension://{browser.extension_id()}/options.html", 800, 600
        )
        # The page shows what config.json holds, then a user saves other values.
        await browser.wait_until(
            options, f"document.getElementById('url-file').textContent.includes('{first.url}')"
        )
        await browser.evaluate(
            options,
            f"""document.getElementById('url').value = {json.dumps(second.url)};
                document.getElementById('token').value = 'other.token.value';
                document.getElementById('save').click();""",
        )
        await second.wait_for(lambda: second.connections == 1)
        assert second.tokens == ["other.token.value"]
        # Back on the page (the options tab is not a page it may read): snapshots
        # go to the gateway the options named.
        await browser.close_page(options)
        await second.page(lambda p: p.title == "Page one")
