"""Terminal chat clients: the documented example of the WebSocket protocol (docs/protocol.md).

`lykta client visitor` chats as an anonymous visitor; `lykta client counsellor` signs in and
answers. A typed line is sent as a message; commands start with a slash (/help lists them).
Frames are shown in words; `--raw` prints them as they travel instead (`→` sent, `←`
received, the resume token included), for debugging the protocol.

Both clients reconnect after a dropped connection, as the protocol asks (a random, growing
delay; a visitor `resume`s from the last `seq` it saw and sends again what was not
acknowledged, a counsellor `sync`s each open chat). How they stop:

- visitor: `/quit` or Ctrl-C leaves the chat waiting for the line's grace period and prints
  the one command that resumes it (the token is shown only then and never written to disk);
  `/end` or Ctrl-D (end of input) ends the chat; `/exit` ends it and erases it at once.
- counsellor: `/quit`, Ctrl-C or Ctrl-D close the connection; open chats wait for the
  line's counsellor grace period, as when a console's connection drops.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import json
import os
import random
import signal
import threading
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from http.cookies import SimpleCookie
from typing import Any
from urllib.parse import urlsplit

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidURI

Frame = dict[str, Any]

DEFAULT_URL = "http://127.0.0.1:8000"

VISITOR_HELP = (
    "Type a line to send it. /quit leaves for now, as Ctrl-C does (the chat waits a short "
    "while; you get the command to come back), /end ends the chat, as Ctrl-D does, /exit ends "
    "it and erases it at once (quick exit)"
)
COUNSELLOR_HELP = (
    "Type a line to write to the current chat. /available, /away, /accept [#n], "
    "/decline [#n], /use #n, /chats, /note <text>, /end, /block (end and refuse this visitor "
    "for a while), /wrapup <topic, topic> | <outcome>, /transfer <line>, "
    "/quit (as Ctrl-D and Ctrl-C do)"
)

# Close codes after which a client reconnects and resumes (docs/protocol.md, "Close codes");
# 1006 is what a connection that simply dropped reports.
RECONNECT_CODES = frozenset({1006, 1012, 1013, 4008})
CLOSE_REASONS = {
    1000: "the server closed the connection",
    1007: "a frame was not valid UTF-8",
    1008: "too many frames (flooding)",
    1009: "a frame was too large",
    4001: "you are signed out (the session ended, or the account was changed)",
    4003: "this connection is not allowed",
}
VISITOR_ENDINGS = {
    "visitor_ended": "You ended the chat.",
    "visitor_exit": "You left the chat (quick exit); it is erased.",
    "visitor_left": "The chat ended because you were away too long.",
    "line_closed": "The chat ended: the line has closed.",
    "lost": "The chat was lost in a fault on the service's side; you can start a new one.",
}
STAFF_ENDINGS = {
    "visitor_ended": "the visitor ended the chat",
    "visitor_exit": "the visitor left by quick exit",
    "visitor_left": "the visitor did not come back in time",
    "counsellor_ended": "you ended the chat",
    "line_closed": "the line closed",
}
RELEASED = {
    "transferred": "it was transferred",
    "grace_expired": "you were away too long; it went back to the queue",
    "taken_over": "a supervisor took it over",
}
# What a waiting chat may be held for (queue.position's `waiting_for`).
HELD_FOR = {
    "counsellor": "your own counsellor",
    "language": "a counsellor who speaks your language",
    "peer": "a peer supporter",
}
STAFF_HELD_FOR = {
    "counsellor": "a named counsellor",
    "language": "someone who speaks the language",
    "peer": "a peer supporter",
}
WITHDRAWN = {
    "expired": "it lapsed",
    "declined": "declined",
    "ended": "the visitor left",
    "visitor_away": "the visitor's connection dropped",
}


# Control characters in what others wrote (an escape sequence could rewrite the terminal)
# are shown as U+FFFD: message text is text, as in the widget and the console.
_CONTROLS: dict[int, str | int | None] = dict.fromkeys(
    (code for code in (*range(0x20), 0x7F, *range(0x80, 0xA0)) if chr(code) not in "\n\t"),
    "\ufffd",
)


def show(text: str) -> None:
    print(text.translate(_CONTROLS), flush=True)


def ws_url(base: str, path: str) -> str:
    parts = urlsplit(base)
    scheme = "wss" if parts.scheme == "https" else "ws"
    return f"{scheme}://{parts.netloc}{path}"


def local_time(epoch: float) -> str:
    return datetime.fromtimestamp(epoch).astimezone().strftime("%a %d %b %H:%M")


def clock(epoch: float) -> str:
    return datetime.fromtimestamp(epoch).astimezone().strftime("%H:%M:%S")


def minutes(seconds: float) -> str:
    """'about 5 min', 'less than a minute'."""
    return "less than a minute" if seconds < 60 else f"about {round(seconds / 60)} min"


def duty_lines(lines: list[Frame]) -> str:
    """'support (on duty until Mon 30 Mar 21:00), youth (off duty)'."""
    return ", ".join(
        f"{x['key']} (on duty until {local_time(x['on_duty_until'])})"
        if x["on_duty"] and x.get("on_duty_until")
        else f"{x['key']} ({'on duty' if x['on_duty'] else 'off duty'})"
        for x in lines
    )


def referral_card(card: Frame) -> str:
    """A referral directory entry as lines of text (links are text too, never followed)."""
    rows = [f"  {card['name']}", f"  {card['description']}"]
    for label in ("phone", "email", "web", "opening_hours", "city"):
        if card.get(label):
            rows.append(f"  {label.replace('_', ' ')}: {card[label]}")
    return "\n".join(rows)


class Key(enum.Enum):
    """What a person pressed other than a line of text."""

    end_of_input = "Ctrl-D"
    interrupt = "Ctrl-C"


Typed = str | Key


class Keyboard:
    """Lines typed on stdin, then Ctrl-D (end of input), and Ctrl-C whenever it is pressed.

    stdin is read by a daemon thread with os.read: a read that waits for a line neither
    blocks the event loop nor keeps the process alive once the client is done, and it works
    on a terminal, a pipe or a file alike.
    """

    def __init__(self) -> None:
        self._typed: asyncio.Queue[Typed] = asyncio.Queue()
        self._held: list[Typed] = []
        self._loop: asyncio.AbstractEventLoop | None = None

    def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._loop.add_signal_handler(signal.SIGINT, self._typed.put_nowait, Key.interrupt)
        threading.Thread(target=self._read, name="stdin", daemon=True).start()

    def stop(self) -> None:
        if self._loop is not None:
            self._loop.remove_signal_handler(signal.SIGINT)

    async def get(self) -> Typed:
        if self._held:
            return self._held.pop(0)
        return await self._typed.get()

    async def within(self, seconds: float) -> Typed | None:
        """What is typed within `seconds`, or None."""
        try:
            return await asyncio.wait_for(self.get(), seconds)
        except TimeoutError:
            return None

    def put_back(self, typed: Typed) -> None:
        self._held.insert(0, typed)

    def _read(self) -> None:
        pending = b""
        while True:
            try:
                chunk = os.read(0, 4096)
            except OSError:
                chunk = b""
            if not chunk:
                break
            *lines, pending = (pending + chunk).split(b"\n")
            for line in lines:
                self._post(line.decode(errors="replace").rstrip("\r"))
        if pending:
            self._post(pending.decode(errors="replace"))
        self._post(Key.end_of_input)

    def _post(self, typed: Typed) -> None:
        assert self._loop is not None
        # The loop is closed once the client is done; what is typed after that goes nowhere.
        with contextlib.suppress(RuntimeError):
            self._loop.call_soon_threadsafe(self._typed.put_nowait, typed)


@dataclass
class Wire:
    """One WebSocket connection carrying JSON text frames; `raw` prints each one."""

    ws: ClientConnection
    raw: bool

    async def send(self, frame: Frame) -> None:
        text = json.dumps(frame, ensure_ascii=False)
        if self.raw:
            show(f"→ {text}")
        await self.ws.send(text)

    async def receive(self) -> Frame:
        text = await self.ws.recv()
        if self.raw:
            show(f"← {text if isinstance(text, str) else text.decode(errors='replace')}")
        frame: Frame = json.loads(text)
        return frame


class Client:
    """What both clients share: connect, converse, reconnect after a drop, leave."""

    path = "/"
    keyboard: Keyboard

    def __init__(self, base: str, *, raw: bool) -> None:
        self.base = base
        self.raw = raw
        # Whether a connection was ever open: until then a failure is reported, not retried.
        self.opened = False

    # What each client does differently.
    def connect_options(self) -> dict[str, Any]:
        return {}

    def resumable(self) -> bool:
        """Whether a lost connection is worth another try: there is something to go back to."""
        return self.opened

    async def opening(self, wire: Wire) -> None:
        """The frames sent as soon as a connection is open."""

    async def on_frame(self, wire: Wire, frame: Frame) -> int | None:
        """Handle a frame from the server; an exit status once there is nothing more to do."""
        raise NotImplementedError

    async def on_typed(self, wire: Wire, typed: Typed) -> int | None:
        """Handle a line or key; an exit status when the person leaves."""
        raise NotImplementedError

    def leave(self) -> int:
        """The person leaves (/quit, Ctrl-C) while the connection is down."""
        raise NotImplementedError

    # The same for both.
    def say(self, text: str | None) -> None:
        """Words for the person (not in --raw mode, where the frames speak for themselves)."""
        if text and not self.raw:
            show(text)

    async def run(self) -> int:
        self.keyboard = Keyboard()
        self.keyboard.start()
        delay = 1.0
        try:
            while True:
                status, lasted = await self._connection()
                if status is not None:
                    return status
                if lasted:
                    delay = 1.0
                    show("(the connection was lost; reconnecting…)")
                else:
                    delay = min(delay * 2, 30.0)
                typed = await self.keyboard.within(random.uniform(delay / 2, delay))
                if typed in ("/quit", Key.interrupt):
                    return self.leave()
                if typed is not None:
                    self.keyboard.put_back(typed)
        finally:
            self.keyboard.stop()

    async def _connection(self) -> tuple[int | None, bool]:
        """One connection until it ends: (exit status or None to reconnect, whether it opened)."""
        try:
            async with connect(
                ws_url(self.base, self.path), compression=None, **self.connect_options()
            ) as ws:
                self.opened = True
                wire = Wire(ws, self.raw)
                await self.opening(wire)
                return await self._converse(wire), True
        except (OSError, InvalidHandshake, InvalidURI, TimeoutError) as exc:
            if self.resumable():
                return None, False
            show(f"! cannot reach Lykta at {self.base}: {exc}")
            return 1, False

    async def _converse(self, wire: Wire) -> int | None:
        receiver = asyncio.create_task(self._receive(wire))
        typist = asyncio.create_task(self._type(wire))
        try:
            done, _ = await asyncio.wait({receiver, typist}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in (receiver, typist):
                task.cancel()
            await asyncio.gather(receiver, typist, return_exceptions=True)
        return (typist if typist in done else receiver).result()

    async def _receive(self, wire: Wire) -> int | None:
        try:
            while True:
                status = await self.on_frame(wire, await wire.receive())
                if status is not None:
                    return status
        except ConnectionClosed as exc:
            code = exc.rcvd.code if exc.rcvd is not None else 1006
            if code in RECONNECT_CODES and self.resumable():
                return None
            show(f"! {CLOSE_REASONS.get(code, f'the connection was closed (code {code})')}")
            return 1

    async def _type(self, wire: Wire) -> int:
        """Until the person leaves; the connection is closed as `_connection` returns."""
        while True:
            status = await self.on_typed(wire, await self.keyboard.get())
            if status is not None:
                return status


# The visitor --------------------------------------------------------------------------------


def parse_resume(value: str) -> tuple[str, str]:
    """'<chat_id>:<token>', as the visitor's client printed it."""
    chat_id, _, token = value.strip().partition(":")
    if not chat_id or not token:
        raise ValueError(value)
    return chat_id, token


class Visitor(Client):
    """An anonymous visitor on one line."""

    path = "/ws/visitor"

    def __init__(
        self,
        base: str,
        line: str,
        language: str,
        *,
        raw: bool,
        resume: tuple[str, str] | None = None,
        program: str = "lykta",
    ) -> None:
        super().__init__(base, raw=raw)
        self.line = line
        self.language = language
        self.program = program
        # The chat: its id and resume token (from chat.started, or --resume), the last
        # transcript entry seen, and messages sent but not yet acknowledged.
        self.chat_id: str | None = resume[0] if resume else None
        self.token: str | None = resume[1] if resume else None
        self.last_seq = 0
        self.unacked: dict[str, str] = {}
        self.counsellor: str | None = None
        # /end or Ctrl-D: end the chat, also on the next connection if this one drops first.
        self.ending = False

    def resumable(self) -> bool:
        return self.opened and self.token is not None

    async def opening(self, wire: Wire) -> None:
        if self.chat_id is not None and self.token is not None:
            await wire.send(
                {
                    "type": "resume",
                    "chat_id": self.chat_id,
                    "token": self.token,
                    "last_seq": self.last_seq,
                }
            )
        else:
            await wire.send({"type": "start", "line": self.line, "language": self.language})
        if self.ending:
            await wire.send({"type": "end"})

    async def on_typed(self, wire: Wire, typed: Typed) -> int | None:
        if typed in ("/quit", Key.interrupt):
            return self.leave()
        if typed in ("/end", Key.end_of_input):
            self.ending = True
            await wire.send({"type": "end"})
        elif typed == "/exit":
            await wire.send({"type": "exit"})
        elif typed == "/code":
            await wire.send({"type": "continuity.accept"})
        elif typed == "/help":
            show(VISITOR_HELP)
        elif isinstance(typed, str) and typed.startswith("/"):
            show(f"(there is no command {typed.split()[0]}; /help lists them)")
        elif isinstance(typed, str) and typed.strip():
            client_id = uuid.uuid4().hex
            self.unacked[client_id] = typed
            await wire.send({"type": "message", "text": typed, "client_id": client_id})
        return None

    def leave(self) -> int:
        if self.chat_id is None or self.token is None:
            show("(you left)")
            return 0
        url = "" if self.base == DEFAULT_URL else f" --url {self.base}"
        show(
            "(you left the chat; it waits for you a short while, two minutes unless the line "
            "says otherwise)\nTo come back to it, with nothing lost:\n"
            f"  {self.program} client visitor{url} --resume={self.chat_id}:{self.token}"
        )
        return 0

    async def on_frame(self, wire: Wire, frame: Frame) -> int | None:
        kind = frame.get("type")
        seq = frame.get("seq")
        if isinstance(seq, int):
            self.last_seq = max(self.last_seq, seq)
        if kind == "chat.started":
            self.chat_id, self.token = frame["chat_id"], frame["token"]
            if frame.get("language_fallback"):
                self.say(
                    f"(the line does not offer '{self.language}'; it answers in "
                    f"'{frame['language']}')"
                )
            self.say("You are in the chat. A counsellor will answer as soon as one is free.")
        elif kind == "chat.resumed":
            counsellor = frame.get("counsellor")
            self.counsellor = counsellor["name"] if counsellor else None
            self.say(
                f"You are back in the chat with {self.counsellor}."
                if self.counsellor
                else "You are back in the chat, waiting for a counsellor."
            )
            # Messages whose acknowledgement was lost: again, with the same client_id.
            for client_id, text in list(self.unacked.items()):
                await wire.send({"type": "message", "text": text, "client_id": client_id})
        elif kind == "queue.position":
            wait = frame.get("estimated_wait_seconds")
            if frame.get("soon"):
                estimate = "; a counsellor will answer soon"
            elif isinstance(wait, int | float):
                estimate = f" ({minutes(wait)})"
            else:
                estimate = ""
            held = frame.get("waiting_for")
            if isinstance(held, dict):
                wish = HELD_FOR.get(str(held.get("reason")), "a particular counsellor")
                estimate += f"; waiting for {wish} until {clock(held['until'])}"
            self.say(f"You are number {frame['position']} in the queue{estimate}.")
        elif kind == "counsellor.joined":
            self.counsellor = frame["name"]
            # `peer` is there when the visitor asked for a peer supporter.
            peer = {True: " (a peer supporter)", False: " (not a peer supporter)", None: ""}
            self.say(f"{frame['name']} joined the chat{peer[frame.get('peer')]}.")
        elif kind == "counsellor.left":
            why = "handed your chat on" if frame["reason"] == "transferred" else "lost the line"
            self.say(
                f"{self.counsellor or 'The counsellor'} {why}; "
                "you are waiting for a counsellor again."
            )
            self.counsellor = None
        elif kind == "message":
            self.unacked.pop(frame.get("client_id") or "", None)
            who = "You" if frame["sender"] == "visitor" else frame.get("name") or "Counsellor"
            self.say(f"{who}: {frame['text']}")
        elif kind == "message.ack":
            self.unacked.pop(frame.get("client_id") or "", None)
        elif kind == "typing":
            if frame["typing"]:
                self.say(f"[{self.counsellor or 'the counsellor'} is typing…]")
        elif kind == "chat.ended":
            by_counsellor = f"{self.counsellor or 'The counsellor'} ended the chat."
            self.say(VISITOR_ENDINGS.get(frame["reason"], by_counsellor))
            return 0
        elif kind == "exited":
            self.say("You left; this chat is erased.")
            return 0
        elif kind == "line.closed":
            opens = frame.get("next_open_at")
            self.say(
                "\n".join(
                    text
                    for text in (
                        frame["message"],
                        frame["alternatives"],
                        frame["opening_hours"],
                        f"It opens again {local_time(opens)}."
                        if isinstance(opens, int | float)
                        else "",
                    )
                    if text
                )
            )
            return 0
        elif kind == "continuity.offered":
            self.say(
                f"{frame['name']} offers you a code: a few words that bring you back to "
                f"{frame['name']} in a later chat. Type /code to take it."
            )
        elif kind == "continuity.code":
            self.say(
                f"Your code: {frame['code']}\nIt is shown only now; keep it where nobody "
                f"else looks. It lapses {local_time(frame['expires_at'])} unless you use it."
            )
        elif kind == "referral":
            self.say(f"{frame['name']} shares a service:\n{referral_card(frame['card'])}")
        elif kind == "error":
            if frame.get("ref") == "resume" and frame.get("code") in (
                "invalid_resume",
                "chat_ended",
            ):
                self.say("! That chat cannot be resumed: it has ended, or the command is wrong.")
                return 1
            self.say(f"! {frame['message']}")
            if frame.get("ref") in ("start", "resume"):
                return 1
        elif kind not in ("hello", "pong", "feedback.thanks"):
            self.say(f"({kind})")
        return None


async def run_visitor(
    base: str,
    line: str,
    language: str,
    *,
    resume: str | None = None,
    raw: bool = False,
    program: str = "lykta",
) -> int:
    try:
        chat = parse_resume(resume) if resume is not None else None
    except ValueError:
        show("! --resume takes what the client printed when you left: <chat>:<token>")
        return 2
    if chat is None:
        show(f"Opening an anonymous chat on '{line}' at {base}. /help lists the commands.")
    else:
        show(f"Going back to your chat at {base}. /help lists the commands.")
    visitor = Visitor(base, line, language, raw=raw, resume=chat, program=program)
    return await visitor.run()


# The counsellor -----------------------------------------------------------------------------


def post_json(url: str, body: dict[str, Any]) -> tuple[int, dict[str, Any], list[str]]:
    """POST JSON; (status, JSON body, Set-Cookie headers), also for 4xx answers."""
    request = urllib.request.Request(  # noqa: S310 (the URL is the operator's own Lykta)
        url,
        data=json.dumps(body).encode(),
        headers={"Content-Type": "application/json"},
        method="POST",
    )
    try:
        with urllib.request.urlopen(request) as response:  # noqa: S310
            return (
                response.status,
                json.loads(response.read() or b"{}"),
                response.headers.get_all("Set-Cookie") or [],
            )
    except urllib.error.HTTPError as exc:
        try:
            detail = json.loads(exc.read() or b"{}")
        except ValueError:
            detail = {}
        return exc.code, detail if isinstance(detail, dict) else {}, []


def sign_in(base: str, username: str, password: str, code: str | None = None) -> str:
    body = {"username": username, "password": password}
    if code:
        body["code"] = code
    status, answer, cookies = post_json(f"{base}/api/staff/session", body)
    if status != 200:
        raise SignInError(str(answer.get("detail") or f"HTTP {status}"))
    cookie = SimpleCookie()
    for header in cookies:
        cookie.load(header)
    return "; ".join(f"{key}={morsel.value}" for key, morsel in cookie.items())


class SignInError(Exception):
    pass


def run_enrol(link: str, *, ask_password: Callable[[], str], ask_code: Callable[[], str]) -> int:
    """Complete an enrolment link in the terminal: password, TOTP (QR code), recovery codes."""
    from app.staff.totp import qr_text

    base, _, token = link.rpartition("#") if "#" in link else ("", "", link)
    base = base.removesuffix("/enrol") or DEFAULT_URL
    status, info, _ = post_json(f"{base}/api/enrolment/status", {"token": token})
    if status != 200:
        show(f"! {info.get('detail', f'HTTP {status}')}")
        return 1
    show(f"Enrolling {info['username']} ({info['role']}).")
    body: dict[str, Any] = {"token": token}
    if info["needs_totp"]:
        status, setup, _ = post_json(f"{base}/api/enrolment/totp", {"token": token})
        if status != 200:
            show(f"! {setup.get('detail', f'HTTP {status}')}")
            return 1
        show("Scan this with an authenticator app (or type the key below):")
        show(qr_text(setup["otpauth_uri"]))
        show(f"key: {setup['secret']}")
    if info["needs_password"]:
        show(f"Choose a password of at least {info['password_min_length']} characters.")
        body["password"] = ask_password()
    if info["needs_totp"]:
        body["code"] = ask_code().strip()
    status, done, _ = post_json(f"{base}/api/enrolment/complete", body)
    if status != 200:
        show(f"! {done.get('detail', f'HTTP {status}')}")
        return 1
    show(f"Enrolled {done['staff']['username']}. You can sign in now.")
    if done["recovery_codes"]:
        show("Recovery codes (each works once instead of a code; shown only now, keep them safe):")
        for code in done["recovery_codes"]:
            show(f"  {code}")
    return 0


@dataclass
class Desk:
    """What a counsellor's client keeps: offers, open chats (with the last seq seen), the
    chat typed lines go to, and wrap-ups owed. Chats are shown as #1, #2, … in this client."""

    me: str | None = None
    offers: list[str] = field(default_factory=list)
    chats: dict[str, int] = field(default_factory=dict)
    current: str | None = None
    owed: list[str] = field(default_factory=list)
    numbers: dict[str, int] = field(default_factory=dict)
    queues: dict[str, str] = field(default_factory=dict)

    def label(self, chat_id: str) -> str:
        return f"#{self.numbers.setdefault(chat_id, len(self.numbers) + 1)}"

    def find(self, given: str, default: str | None) -> str | None:
        """The chat named by '#2', '2' or its id; `default` when nothing is given."""
        given = given.strip().removeprefix("#")
        if not given:
            return default
        for chat_id, number in self.numbers.items():
            if given in (str(number), chat_id):
                return chat_id
        return None


class Counsellor(Client):
    """A signed-in counsellor's connection (its session cookie)."""

    path = "/ws/staff"

    def __init__(self, base: str, cookie: str, *, raw: bool) -> None:
        super().__init__(base, raw=raw)
        self.cookie = cookie
        self.desk = Desk()

    def connect_options(self) -> dict[str, Any]:
        return {"additional_headers": {"Cookie": self.cookie}}

    def leave(self) -> int:
        if self.desk.chats:
            show(
                f"(you left; your {len(self.desk.chats)} open chat(s) wait for you for the "
                "line's grace period, then go back to the queue)"
            )
        else:
            show("(you left)")
        return 0

    async def on_typed(self, wire: Wire, typed: Typed) -> int | None:
        if typed in ("/quit", Key.interrupt, Key.end_of_input):
            return self.leave()
        assert isinstance(typed, str)
        desk = self.desk
        command, _, rest = typed.partition(" ")
        if not command.startswith("/"):
            if not typed.strip():
                return None
            if desk.current is None:
                show("(no chat to write to: /accept an offer, or /use #n)")
                return None
            await wire.send(
                {
                    "type": "message",
                    "chat_id": desk.current,
                    "text": typed,
                    "client_id": uuid.uuid4().hex,
                }
            )
        elif command in ("/available", "/away"):
            await wire.send({"type": "status", "status": command[1:]})
        elif command in ("/accept", "/decline"):
            chat_id = desk.find(rest, desk.offers[-1] if desk.offers else None)
            if chat_id is None:
                show("(no such offer)")
            else:
                await wire.send({"type": command[1:], "chat_id": chat_id})
        elif command == "/use":
            chat_id = desk.find(rest, None)
            if chat_id not in desk.chats:
                show("(no such open chat; /chats lists them)")
            else:
                desk.current = chat_id
                show(f"(writing to {desk.label(chat_id)})")
        elif command == "/chats":
            for chat_id in desk.chats:
                mark = " (current)" if chat_id == desk.current else ""
                show(f"  {desk.label(chat_id)}{mark}")
            for chat_id in desk.owed:
                show(f"  {desk.label(chat_id)} (ended; wrap-up owed)")
            if not desk.chats and not desk.owed:
                show("(no open chats)")
        elif command == "/wrapup":
            if not desk.owed:
                show("(no wrap-up is owed)")
                return None
            topics, _, outcome = rest.partition("|")
            await wire.send(
                {
                    "type": "wrapup",
                    "chat_id": desk.owed[0],
                    "topics": [t.strip() for t in topics.split(",") if t.strip()],
                    "outcome": outcome.strip(),
                }
            )
        elif command in ("/note", "/end", "/block", "/transfer") and desk.current is None:
            show("(no current chat; /use #n)")
        elif command == "/note":
            await wire.send({"type": "note", "chat_id": desk.current, "text": rest})
        elif command in ("/end", "/block"):
            await wire.send({"type": command[1:], "chat_id": desk.current})
        elif command == "/transfer":
            await wire.send({"type": "transfer", "chat_id": desk.current, "line": rest.strip()})
        elif command == "/help":
            show(COUNSELLOR_HELP)
        else:
            show(f"(there is no command {command}; /help lists them)")
        return None

    async def on_frame(self, wire: Wire, frame: Frame) -> int | None:
        desk = self.desk
        kind = frame.get("type")
        chat_id = frame.get("chat_id")
        label = desk.label(chat_id) if isinstance(chat_id, str) else ""
        seq = frame.get("seq")
        if isinstance(chat_id, str) and isinstance(seq, int) and chat_id in desk.chats:
            desk.chats[chat_id] = max(desk.chats[chat_id], seq)
        if kind == "hello":
            again = desk.me is not None
            desk.me = frame["staff"]["id"]
            desk.offers = [offer["chat_id"] for offer in frame["offers"]]
            desk.owed = [owed["chat_id"] for owed in frame["wrapups"]]
            self.say(
                ("(connected again) " if again else f"Signed in as {frame['staff']['alias']}. ")
                + f"Lines: {duty_lines(frame['lines'])}. You are {frame['status']}"
                + ("; type /available to take chats." if frame["status"] != "available" else ".")
            )
            # Open chats (after a reconnect, or from another client): each from where this
            # client is, so nothing is shown twice and nothing is missed.
            desk.chats = {c["chat_id"]: desk.chats.get(c["chat_id"], 0) for c in frame["chats"]}
            for chat_id, last in desk.chats.items():
                await wire.send({"type": "sync", "chat_id": chat_id, "last_seq": last})
                self.say(f"(open chat {desk.label(chat_id)})")
            if desk.current not in desk.chats:
                desk.current = next(iter(desk.chats), None)
            for owed in desk.owed:
                self.say(f"(wrap-up owed for {desk.label(owed)}; /wrapup)")
            for lost in frame.get("lost", ()):
                self.say(f"({desk.label(lost['chat_id'])} was lost with the server's data)")
        elif kind in ("duty", "profile"):
            self.say(f"(lines: {duty_lines(frame['lines'])})")
        elif kind == "status":
            lapsed = " (two offers in a row lapsed)" if frame.get("reason") else ""
            self.say(f"(you are {frame['status']}{lapsed})")
        elif kind == "queue.summary":
            waiting = frame["waiting"]
            parts = [f"{waiting} waiting" if waiting else "nobody waiting"]
            if frame.get("offered"):
                parts.append(f"{frame['offered']} of them offered now")
            for held in frame.get("held") or ():
                wish = STAFF_HELD_FOR.get(held["reason"], held["reason"])
                language = f" ({held['language']})" if held.get("language") else ""
                parts.append(f"{held['count']} for {wish}{language} until {clock(held['until'])}")
            if waiting:
                parts.append(f"the longest for {minutes(frame['longest_wait_seconds'])}")
            summary = f"(queue on {frame['line']}: {', '.join(parts)})"
            # Said again only when it changes in words.
            if desk.queues.get(frame["line"]) != summary:
                desk.queues[frame["line"]] = summary
                self.say(summary)
        elif kind == "offer":
            desk.offers.append(frame["chat_id"])
            self.say(
                f"Offer {label}: a chat on {frame['line']} in {frame['language']}, waiting "
                f"{minutes(frame['waited_seconds'])}. /accept within "
                f"{frame['timeout_seconds']} s."
            )
        elif kind == "offer.withdrawn":
            if frame["chat_id"] in desk.offers:
                desk.offers.remove(frame["chat_id"])
            self.say(f"(offer {label} withdrawn: {WITHDRAWN.get(frame['reason'], '')})")
        elif kind == "chat.opened":
            desk.chats[frame["chat_id"]] = 0
            desk.current = frame["chat_id"]
            if frame["chat_id"] in desk.offers:
                desk.offers.remove(frame["chat_id"])
            self.say(f"Chat {label} opened on {frame['line']}; you are writing to it.")
        elif kind == "chat.released":
            self._close(frame["chat_id"])
            self.say(f"({label} is no longer yours: {RELEASED.get(frame['reason'], '')})")
        elif kind == "counsellor.joined":
            self.say(f"{label} {frame['name']} joined.")
        elif kind == "counsellor.left":
            self.say(f"{label} the counsellor left ({frame['reason']}).")
        elif kind == "message":
            who = "visitor" if frame["sender"] == "visitor" else frame.get("name", "counsellor")
            self.say(f"{label} {who}: {frame['text']}")
        elif kind in ("note", "whisper", "handover"):
            self.say(f"{label} {kind} from {frame['name']}: {frame['text']}")
        elif kind == "typing":
            if frame["typing"]:
                self.say(f"[{label} the visitor is typing…]")
        elif kind == "visitor.away":
            self.say(
                f"({label} the visitor's connection dropped; the chat ends at "
                f"{clock(frame['grace_until'])} unless they come back)"
            )
        elif kind == "visitor.back":
            self.say(f"({label} the visitor is back)")
        elif kind == "chat.ended":
            self._close(frame["chat_id"])
            self.say(f"{label} has ended: {STAFF_ENDINGS.get(frame['reason'], frame['reason'])}.")
        elif kind == "wrapup.required":
            if frame["chat_id"] not in desk.owed:
                desk.owed.append(frame["chat_id"])
            self.say(
                f"Wrap up {label}: /wrapup <topics> | <outcome>. Topics: "
                f"{', '.join(frame['topics'])}. Outcomes: {', '.join(frame['outcomes'])}."
            )
        elif kind == "wrapup.saved":
            if frame["chat_id"] in desk.owed:
                desk.owed.remove(frame["chat_id"])
            self.say(f"(wrap-up of {label} saved)")
        elif kind == "blocked":
            self.say(
                f"({label} ended; its visitor cannot start a chat until "
                f"{local_time(frame['until'])})"
            )
        elif kind == "error":
            self.say(f"! {frame['message']}")
        elif kind not in ("pong", "message.ack", "synced", "whisper.ack"):
            self.say(f"({kind}{' ' + label if label else ''})")
        return None

    def _close(self, chat_id: str) -> None:
        desk = self.desk
        desk.chats.pop(chat_id, None)
        if desk.current == chat_id:
            desk.current = next(iter(desk.chats), None)
            if desk.current is not None:
                show(f"(now writing to {desk.label(desk.current)})")


async def run_counsellor(
    base: str, username: str, password: str, code: str | None = None, *, raw: bool = False
) -> int:
    try:
        cookie = await asyncio.to_thread(sign_in, base, username, password, code)
    except (OSError, SignInError) as exc:
        show(f"! sign-in failed: {exc}")
        return 1
    return await Counsellor(base, cookie, raw=raw).run()
