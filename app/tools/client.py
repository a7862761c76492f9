"""A terminal chat client: the documented example of the WebSocket protocol.

`lykta client visitor` chats as an anonymous visitor; `lykta client counsellor` signs in and
answers. Type a line to send it; commands start with a slash (/help lists them).
"""

from __future__ import annotations

import asyncio
import json
import sys
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable
from datetime import datetime
from http.cookies import SimpleCookie
from typing import Any
from urllib.parse import urlsplit

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

VISITOR_HELP = (
    "/end ends the chat, /exit ends it and erases it at once (quick exit), "
    "/quit leaves (the chat waits for you during its grace period)"
)
COUNSELLOR_HELP = (
    "/available, /away, /accept [chat], /decline [chat], /use <chat>, /note <text>, "
    "/end, /block (end and refuse this visitor for a while), "
    "/wrapup <topic,topic> | <outcome>, /transfer <line>, /quit"
)


def ws_url(base: str, path: str) -> str:
    parts = urlsplit(base)
    scheme = "wss" if parts.scheme == "https" else "ws"
    return f"{scheme}://{parts.netloc}{path}"


def show(text: str) -> None:
    print(text, flush=True)


_stdin: asyncio.StreamReader | None = None


async def read_line() -> str | None:
    """One line from stdin without a blocking thread (which would keep the client alive)."""
    global _stdin
    if _stdin is None:
        reader = asyncio.StreamReader()
        loop = asyncio.get_running_loop()
        await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
        _stdin = reader
    line = await _stdin.readline()
    return None if line == b"" else line.decode().rstrip("\n")


async def send(ws: ClientConnection, frame: dict[str, Any]) -> None:
    await ws.send(json.dumps(frame))


def describe(frame: dict[str, Any]) -> str | None:
    kind = frame.get("type")
    if kind == "message":
        who = frame.get("name") or frame.get("sender")
        return f"[{frame['seq']}] {who}: {frame['text']}"
    if kind == "queue.position":
        wait = frame.get("estimated_wait_seconds")
        estimate = f", about {round(wait / 60)} min" if isinstance(wait, int) else ""
        return f"(you are number {frame['position']} in the queue{estimate})"
    if kind == "counsellor.joined":
        return f"({frame['name']} has joined the chat)"
    if kind == "counsellor.left":
        return f"(the counsellor left: {frame['reason']}; you are back in the queue)"
    if kind == "chat.ended":
        return f"(the chat has ended: {frame['reason']})"
    if kind == "line.closed":
        opens = frame.get("next_open_at")
        when = f"\n(it opens again {_local_time(opens)})" if isinstance(opens, int | float) else ""
        return (
            f"(the line is {frame['reason']}) {frame['message']}\n"
            f"{frame['alternatives']}\n{frame['opening_hours']}{when}"
        )
    if kind == "duty":
        return f"(lines: {_duty_lines(frame['lines'])})"
    if kind == "typing":
        return f"({frame['sender']} is typing…)" if frame["typing"] else None
    if kind == "exited":
        return "(you left; nothing of this chat is kept)"
    if kind == "blocked":
        return f"(chat {frame['chat_id']} ended; its visitor cannot start a chat for a while)"
    if kind == "error":
        return f"! {frame['code']}: {frame['message']}"
    if kind in ("pong", "message.ack", "hello", "synced", "queue.summary"):
        return None
    return f"<{json.dumps(frame, ensure_ascii=False)}>"


def _local_time(epoch: float) -> str:
    return datetime.fromtimestamp(epoch).astimezone().strftime("%a %d %b %H:%M")


def _duty_lines(lines: list[dict[str, Any]]) -> str:
    """'support (on duty) until Mon 30 Mar 21:00, youth'."""
    return ", ".join(
        f"{x['key']} (on duty) until {_local_time(x['on_duty_until'])}"
        if x["on_duty"] and x.get("on_duty_until")
        else f"{x['key']}{' (on duty)' if x['on_duty'] else ''}"
        for x in lines
    )


async def run_visitor(base: str, line: str, language: str) -> int:
    show(f"Connecting to {base} as an anonymous visitor on '{line}'. {VISITOR_HELP}")
    resume: dict[str, Any] | None = None
    last_seq = 0
    while True:
        try:
            async with connect(ws_url(base, "/ws/visitor"), compression=None) as ws:
                if resume is None:
                    await send(ws, {"type": "start", "line": line, "language": language})
                else:
                    await send(ws, {"type": "resume", **resume, "last_seq": last_seq})
                reader = asyncio.create_task(_visitor_input(ws))
                try:
                    async for raw in ws:
                        frame = json.loads(raw)
                        if frame.get("type") == "chat.started":
                            resume = {"chat_id": frame["chat_id"], "token": frame["token"]}
                        last_seq = max(last_seq, int(frame.get("seq", 0) or 0))
                        text = describe(frame)
                        if text:
                            show(text)
                        if frame.get("type") in ("chat.ended", "line.closed", "exited"):
                            return 0
                        if frame.get("type") == "error" and frame.get("code") in (
                            "invalid_resume",
                            "chat_ended",
                        ):
                            return 1
                finally:
                    reader.cancel()
                if reader.done() and not reader.cancelled() and reader.result() == "quit":
                    return 0
        except (ConnectionClosed, OSError) as exc:
            if resume is None:
                show(f"! could not reach Lykta: {exc}")
                return 1
        show("(connection lost; resuming…)")
        await asyncio.sleep(1)


async def _visitor_input(ws: ClientConnection) -> str:
    while True:
        line = await read_line()
        if line is None or line == "/quit":
            await ws.close()
            return "quit"
        if line == "/end":
            await send(ws, {"type": "end"})
        elif line == "/exit":
            await send(ws, {"type": "exit"})
        elif line == "/help":
            show(VISITOR_HELP)
        elif line.strip():
            await send(ws, {"type": "message", "text": line, "client_id": uuid.uuid4().hex})


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
    base = base.removesuffix("/enrol") or "http://127.0.0.1:8000"
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


async def run_counsellor(base: str, username: str, password: str, code: str | None = None) -> int:
    try:
        cookie = await asyncio.to_thread(sign_in, base, username, password, code)
    except (OSError, SignInError) as exc:
        show(f"! sign-in failed: {exc}")
        return 1
    show(f"Signed in as {username}. {COUNSELLOR_HELP}")
    state: dict[str, Any] = {"current": None, "offers": []}
    async with connect(
        ws_url(base, "/ws/staff"), additional_headers={"Cookie": cookie}, compression=None
    ) as ws:
        reader = asyncio.create_task(_counsellor_input(ws, state))
        try:
            async for raw in ws:
                frame = json.loads(raw)
                kind = frame.get("type")
                if kind == "hello":
                    lines = _duty_lines(frame["lines"])
                    show(
                        f"(lines: {lines}; status {frame['status']}; type /available to take chats)"
                    )
                    state["offers"] = [o["chat_id"] for o in frame["offers"]]
                elif kind == "offer":
                    state["offers"].append(frame["chat_id"])
                    show(
                        f"(offer {frame['chat_id']} on {frame['line']} in {frame['language']}; "
                        f"/accept within {frame['timeout_seconds']} s)"
                    )
                elif kind == "offer.withdrawn":
                    if frame["chat_id"] in state["offers"]:
                        state["offers"].remove(frame["chat_id"])
                    show(f"(offer {frame['chat_id']} withdrawn: {frame['reason']})")
                elif kind == "chat.opened":
                    state["current"] = frame["chat_id"]
                    show(f"(chat {frame['chat_id']} opened; you are writing to it)")
                elif kind == "wrapup.required":
                    show(
                        f"(wrap up {frame['chat_id']}: topics {frame['topics']}, "
                        f"outcomes {frame['outcomes']})"
                    )
                elif kind == "queue.summary":
                    show(
                        f"(queue {frame['line']}: {frame['waiting']} waiting, "
                        f"longest {frame['longest_wait_seconds']} s)"
                    )
                elif kind == "status":
                    show(f"(status: {frame['status']})")
                else:
                    text = describe(frame)
                    if text:
                        show(text)
        except ConnectionClosed:
            pass
        finally:
            reader.cancel()
    return 0


async def _counsellor_input(ws: ClientConnection, state: dict[str, Any]) -> None:
    last_ended: str | None = None
    while True:
        line = await read_line()
        if line is None or line == "/quit":
            await ws.close()
            return
        command, _, rest = line.partition(" ")
        current = state["current"]
        if command in ("/available", "/away"):
            await send(ws, {"type": "status", "status": command[1:]})
        elif command in ("/accept", "/decline"):
            chat_id = rest.strip() or (state["offers"][-1] if state["offers"] else None)
            if chat_id:
                await send(ws, {"type": command[1:], "chat_id": chat_id})
        elif command == "/use":
            state["current"] = rest.strip()
        elif command == "/note" and current:
            await send(ws, {"type": "note", "chat_id": current, "text": rest})
        elif command in ("/end", "/block") and current:
            await send(ws, {"type": command[1:], "chat_id": current})
            last_ended = current
        elif command == "/wrapup" and (last_ended or current):
            topics, _, outcome = rest.partition("|")
            await send(
                ws,
                {
                    "type": "wrapup",
                    "chat_id": last_ended or current,
                    "topics": [t.strip() for t in topics.split(",") if t.strip()],
                    "outcome": outcome.strip(),
                },
            )
        elif command == "/transfer" and current:
            await send(ws, {"type": "transfer", "chat_id": current, "line": rest.strip()})
        elif command == "/help":
            show(COUNSELLOR_HELP)
        elif line.strip() and not line.startswith("/") and current:
            await send(
                ws,
                {
                    "type": "message",
                    "chat_id": current,
                    "text": line,
                    "client_id": uuid.uuid4().hex,
                },
            )
