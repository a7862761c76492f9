"""What a visitor and a counsellor meet first (issue 25), in real Chromium: the wait the widget
states when a counsellor is free, the peer supporter choice only while one answers, a visitor
who dropped while waiting neither counted ahead nor offered, and the counsellor's queue card
counting an offered chat and saying why a waiting one is not offered. Each state is checked by
axe-core and saved as a screenshot."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from playwright.async_api import Browser, Page, ViewportSize, expect

from app.routing.service import duration_key
from app.settings import Settings
from tests.conftest import FAST
from tests.support.browser import axe_violations, chromium, describe, screenshot
from tests.support.clients import VisitorClient, open_staff, open_visitor
from tests.support.console import sign_in_console
from tests.support.seed import PASSWORD, add_counsellor, add_line
from tests.support.server import RunningServer, bound_socket, run_server

pytestmark = pytest.mark.browser

PHONE: ViewportSize = {"width": 390, "height": 844}
DESKTOP: ViewportSize = {"width": 1280, "height": 800}


@pytest.fixture
async def server(database_url: str) -> AsyncIterator[RunningServer]:
    sock = bound_socket()
    public_url = f"http://127.0.0.1:{sock.getsockname()[1]}"
    settings = Settings(database_url=database_url, public_url=public_url, **FAST)
    async with run_server(settings, sock=sock) as running:
        yield running


@pytest.fixture
async def browser() -> AsyncIterator[Browser]:
    async with chromium() as running:
        yield running


@pytest.fixture
async def page(browser: Browser) -> AsyncIterator[Page]:
    context = await browser.new_context(viewport=PHONE, locale="en-GB")
    page = await context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    yield page
    await context.close()
    assert errors == [], errors


async def checked(page: Page, name: str) -> None:
    violations = await axe_violations(page)
    assert violations == [], f"{name}:\n{describe(violations)}"
    await screenshot(page, f"queue-{name}")


async def open_widget(server: RunningServer, page: Page) -> None:
    await page.goto(f"{server.url}/chat/support?lang=en")
    await page.get_by_role("button", name="Start chat").wait_for()


async def waiting_visitor(server: RunningServer, *, peer: bool = False) -> VisitorClient:
    visitor = await open_visitor(server)
    await visitor.start(peer=peer)
    return visitor


async def test_first_in_line_with_a_counsellor_free_hears_soon_not_twenty_minutes(
    server: RunningServer, page: Page
) -> None:
    rt = server.runtime
    await add_line(rt)
    await add_counsellor(rt, "anna", alias="Anna", capacity=3)
    anna = await open_staff(server, "anna", PASSWORD)
    # The line's chats lately lasted twenty minutes each; Anna has 0 of 3 chats now.
    for _ in range(10):
        await rt.broker.push_recent(duration_key("support"), 1200.0, 50, 3600)

    await open_widget(server, page)
    await page.get_by_role("button", name="Start chat").click()
    queue = page.locator("#queue")
    await expect(queue).to_contain_text("You are next in the queue.")
    await expect(queue).to_contain_text("Someone will answer you soon.")
    await expect(queue).not_to_contain_text("min")
    await checked(page, "soon")
    chat_id = (await anna.expect("offer"))["chat_id"]
    await anna.accept(chat_id)
    await page.get_by_role("heading", name="You are chatting with Anna").wait_for()


async def test_no_peer_choice_without_a_peer_and_nobody_held_back_by_one(
    server: RunningServer, page: Page
) -> None:
    rt = server.runtime
    # A visitor who asks for a peer would wait for one an hour, if one answered here.
    await add_line(rt, peer_relax_seconds=3600)
    await add_counsellor(rt, "anna", alias="Anna", capacity=2)
    await add_counsellor(rt, "pia", alias="Pia", peer=True, capacity=1)
    anna = await open_staff(server, "anna", PASSWORD)

    # No peer supporter answers on the line: no box to tick, and Anna is offered at once.
    await open_widget(server, page)
    await expect(page.locator("#peer")).to_be_hidden()
    await checked(page, "no-peer-choice")
    await page.get_by_role("button", name="Start chat").click()
    await expect(page.locator("#queue")).to_contain_text("Someone will answer you soon.")
    chat_id = (await anna.expect("offer"))["chat_id"]
    await anna.accept(chat_id)
    await page.get_by_role("heading", name="You are chatting with Anna").wait_for()
    await page.get_by_role("button", name="End chat").click()
    await page.get_by_role("button", name="Yes, end it").click()
    await anna.expect("chat.ended", chat_id=chat_id)

    # Pia, a peer supporter, answers (and is busy with someone): the choice is there.
    pia = await open_staff(server, "pia", PASSWORD)
    busy = await waiting_visitor(server)
    await pia.accept((await pia.expect("offer", chat_id=busy.chat_id))["chat_id"])
    await open_widget(server, page)
    peer = page.get_by_role("checkbox", name="I would like to talk to a peer supporter")
    await expect(peer).to_be_visible()
    await checked(page, "peer-choice")
    await peer.check()
    await page.get_by_role("button", name="Start chat").click()
    # Waiting for Pia, and told so, with when anyone free answers instead.
    queue = page.locator("#queue")
    await expect(queue).to_contain_text("You asked for a peer supporter")
    await expect(queue).to_contain_text("someone else answers you")
    await checked(page, "waiting-for-a-peer")
    await anna.expect_none("offer", within=1.0)
    await busy.send({"type": "end"})
    chat_id = (await pia.expect("offer"))["chat_id"]
    await pia.accept(chat_id)
    await page.get_by_role("heading", name="You are chatting with Pia").wait_for()
    await expect(page.get_by_text("Pia is a peer supporter.")).to_be_visible()


async def test_a_visitor_who_dropped_is_not_counted_ahead_nor_offered(
    server: RunningServer, page: Page
) -> None:
    rt = server.runtime
    await add_line(rt, visitor_grace_seconds=60)
    await add_counsellor(rt, "anna", alias="Anna", capacity=1)
    anna = await open_staff(server, "anna", PASSWORD)
    talking = await waiting_visitor(server)
    await anna.accept_offer()
    ahead = await waiting_visitor(server)

    await open_widget(server, page)
    await page.get_by_role("button", name="Start chat").click()
    queue = page.locator("#queue")
    await expect(queue).to_contain_text("You are number 2 in the queue.")
    # The one ahead loses their connection: still in their grace period, yet not ahead.
    await ahead.close()
    await expect(queue).to_contain_text("You are next in the queue.")
    await checked(page, "dropped-ahead")
    record = await rt.broker.get_chat(ahead.chat_id)
    assert record is not None and record.visitor_connected is False

    # Anna's chat ends: the offer goes to the visitor who is here.
    await talking.send({"type": "end"})
    offer = await anna.expect("offer")
    assert offer["chat_id"] != ahead.chat_id
    await anna.accept(offer["chat_id"])
    await page.get_by_role("heading", name="You are chatting with Anna").wait_for()


async def test_the_queue_card_counts_an_offered_chat_and_says_why_one_waits(
    server: RunningServer, page: Page
) -> None:
    rt = server.runtime
    await add_line(rt, peer_relax_seconds=3600)
    await add_counsellor(rt, "anna", alias="Anna", capacity=2)
    await add_counsellor(rt, "pia", alias="Pia", peer=True, capacity=1)
    pia = await open_staff(server, "pia", PASSWORD)
    busy = await waiting_visitor(server)
    await pia.accept((await pia.expect("offer", chat_id=busy.chat_id))["chat_id"])

    await page.set_viewport_size(DESKTOP)
    await sign_in_console(page, server, "anna", PASSWORD)
    await page.locator(".status-choice label", has_text="Available").click()
    await expect(page.locator(".chat-empty")).to_contain_text("Offers appear under Offers")
    card = page.locator('.queue-card[data-line="support"]')
    await expect(card).to_contain_text("Nobody waiting")

    # One asks for a peer supporter: not offered to Anna, and the card says why.
    asked = await waiting_visitor(server, peer=True)
    held = card.locator('[data-held="peer"]')
    await expect(held).to_contain_text("1 waiting for a peer supporter (until")
    await expect(card.locator(".queue-count")).to_have_text("1 waiting")
    # One without a wish: offered to Anna. The card counts it while the offer is on screen.
    plain = await waiting_visitor(server)
    await expect(page.locator(f'.offer-card[data-chat="{plain.chat_id}"]')).to_be_visible()
    await expect(card.locator(".queue-count")).to_have_text("2 waiting")
    await expect(card).to_contain_text("1 of them offered now")
    await expect(card).not_to_contain_text("Nobody waiting")
    await expect(held).to_be_visible()
    await checked(page, "queue-card")

    offer = page.locator(f'.offer-card[data-chat="{plain.chat_id}"]')
    await offer.get_by_role("button", name="Accept").click()
    await plain.expect("counsellor.joined", name="Anna")
    await expect(card.locator(".queue-count")).to_have_text("1 waiting")
    await expect(card).not_to_contain_text("offered now")
    # Pia is free again: the one who asked for her gets her, and nobody waits.
    await busy.send({"type": "end"})
    await pia.accept((await pia.expect("offer", chat_id=asked.chat_id))["chat_id"])
    await expect(card).to_contain_text("Nobody waiting")
    await expect(held).to_have_count(0)
