"""The deployment example's reverse proxy (config/deploy/nginx.conf), run for real.

A real nginx with the example's configuration, only its addresses, ports and certificate
paths replaced, in front of two real `lykta serve` processes on one Redis and one PostgreSQL:
chats work through it over TLS, a client that reconnects after a process went away reaches
the other one, and the proxy writes nothing anywhere, so no client address either.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import ipaddress
import re
import shutil
import signal
import ssl
import subprocess
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from app.settings import Settings
from tests.support.clients import open_chat, open_staff, open_visitor
from tests.support.processes import (
    ROOT,
    LyktaProcess,
    RedisServer,
    free_port,
    process_env,
    processes,
    seeding,
)
from tests.support.seed import PASSWORD, add_counsellor, add_line
from tests.support.waiting import eventually

pytestmark = [pytest.mark.postgres, pytest.mark.redis]

EXAMPLE = ROOT / "config" / "deploy" / "nginx.conf"
# Where Debian's nginx would log if a configuration asked it to (it must not be asked).
SYSTEM_LOGS = Path("/var/log/nginx")
NGINX = shutil.which("nginx") or "/usr/sbin/nginx"


@dataclass
class Proxy:
    """nginx in front of the app processes; an Endpoint for the test clients."""

    http_port: int
    https_port: int
    output: Path
    directory: Path
    proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"https://127.0.0.1:{self.https_port}"

    @property
    def ws_url(self) -> str:
        return f"wss://127.0.0.1:{self.https_port}"

    def spawn(self, conf: Path) -> None:
        assert Path(NGINX).exists(), "nginx is not installed (make test installs it)"
        # -e: the log nginx writes to before it has read the configuration (by default a
        # file under /var/log).
        argv = [NGINX, "-p", str(self.directory), "-c", str(conf), "-e", "stderr"]
        with self.output.open("wb") as out:
            self.proc = subprocess.Popen(
                [*argv, "-g", "daemon off;"], stdout=out, stderr=subprocess.STDOUT
            )

    async def stop(self) -> None:
        if self.proc is None:
            return
        self.proc.send_signal(signal.SIGQUIT)  # nginx's graceful shutdown
        try:
            await asyncio.wait_for(asyncio.to_thread(self.proc.wait), 30)
        except TimeoutError:
            self.proc.kill()

    def files_written(self) -> set[str]:
        """Files in its directory that the test (and the app processes) did not put there."""
        ours = {"nginx.conf", "nginx.out", "fullchain.pem", "privkey.pem"}
        apps = {"lykta-0.log", "lykta-1.log"}
        return {p.name for p in self.directory.iterdir()} - ours - apps


def self_signed(directory: Path) -> tuple[Path, Path]:
    """A certificate for 127.0.0.1 and its key, as files."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "lykta test proxy")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = directory / "fullchain.pem", directory / "privkey.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_path, key_path


def nginx_version() -> tuple[int, ...]:
    out = subprocess.run([NGINX, "-v"], capture_output=True, text=True, check=True).stderr
    found = re.search(r"nginx/(\d+)\.(\d+)\.(\d+)", out)
    assert found, out
    return tuple(int(part) for part in found.groups())


def configuration(proxy: Proxy, apps: list[LyktaProcess], cert: Path, key: Path) -> str:
    """The example, with what only a deployment knows (hosts, ports, certificate) replaced."""
    conf = EXAMPLE.read_text()
    replacements = {
        "server app-1:8000": f"server 127.0.0.1:{apps[0].port}",
        "server app-2:8000": f"server 127.0.0.1:{apps[1].port}",
        "listen 80;": f"listen 127.0.0.1:{proxy.http_port};",
        "listen 443 ssl;": f"listen 127.0.0.1:{proxy.https_port} ssl;",
        "/etc/nginx/certs/fullchain.pem": str(cert),
        "/etc/nginx/certs/privkey.pem": str(key),
        "pid /tmp/nginx.pid;": f"pid {proxy.directory / 'nginx.pid'};",
    }
    for old, new in replacements.items():
        assert conf.count(old) == 1, f"the example no longer has {old!r}"
        conf = conf.replace(old, new)
    if nginx_version() < (1, 25, 1):
        # Debian's nginx predates the `http2` directive (the example's image has it);
        # HTTP/2 plays no part in what is tested here.
        conf = conf.replace("        http2 on;\n", "")
    return conf


@contextlib.asynccontextmanager
async def behind_proxy(
    settings: Settings, directory: Path
) -> AsyncIterator[tuple[Proxy, list[LyktaProcess]]]:
    """Two app processes and nginx in front of them, stopped afterwards."""
    async with processes(settings, directory) as apps, proxy_for(apps, directory) as proxy:
        yield proxy, apps


@contextlib.asynccontextmanager
async def proxy_for(apps: list[LyktaProcess], directory: Path) -> AsyncIterator[Proxy]:
    """nginx in front of two running app processes, stopped afterwards."""
    proxy = Proxy(free_port(), free_port(), directory / "nginx.out", directory)
    cert, key = self_signed(directory)
    conf = directory / "nginx.conf"
    conf.write_text(configuration(proxy, apps, cert, key))
    proxy.spawn(conf)
    try:
        await answering(proxy, cert)
        yield proxy
    finally:
        await proxy.stop()


async def answering(proxy: Proxy, cert: Path) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 30
    trusting = ssl.create_default_context(cafile=cert)
    async with httpx.AsyncClient(base_url=proxy.url, timeout=2.0, verify=trusting) as http:
        while True:
            assert proxy.proc is not None and proxy.proc.poll() is None, proxy.output.read_text()
            try:
                if (await http.get("/healthz")).status_code == 200:
                    return
            except httpx.HTTPError:
                if loop.time() > deadline:
                    raise
            await asyncio.sleep(0.1)


def system_logs() -> dict[str, int]:
    if not SYSTEM_LOGS.is_dir():
        return {}
    return {p.name: p.stat().st_size for p in SYSTEM_LOGS.iterdir() if p.is_file()}


async def test_chats_work_through_the_proxy_which_keeps_no_client_address(
    tmp_path: Path, scale_settings: Callable[..., Settings], monkeypatch: pytest.MonkeyPatch
) -> None:
    https_port = free_port()
    settings = scale_settings(
        trusted_proxies=frozenset({"127.0.0.1"}),
        public_url=f"https://127.0.0.1:{https_port}",
    )
    async with seeding(settings) as rt:
        await add_line(rt)
        await add_counsellor(rt, "anna", alias="Anna")
    before = system_logs()
    async with behind_proxy(settings, tmp_path) as (proxy, (a, b)):
        # The test's certificate is trusted by the clients (httpx and websockets read this).
        cert = tmp_path / "fullchain.pem"
        monkeypatch.setenv("SSL_CERT_FILE", str(cert))
        # Plain HTTP is sent to HTTPS.
        async with httpx.AsyncClient() as http:
            response = await http.get(f"http://127.0.0.1:{proxy.http_port}/chat/support")
        assert response.status_code == 301
        assert response.headers["location"].startswith("https://")
        # The visitor's files pass through compressed as Lykta sent them; API answers never
        # are compressed, by Lykta or by the proxy.
        async with httpx.AsyncClient(base_url=proxy.url) as http:
            script = await http.get("/widget/chat.js", headers={"Accept-Encoding": "br, gzip"})
            line = await http.get("/api/lines/support", headers={"Accept-Encoding": "br, gzip"})
        assert script.headers["content-encoding"] == "br"
        assert script.content == (ROOT / "widget" / "chat.js").read_bytes()
        assert line.status_code == 200 and "content-encoding" not in line.headers

        anna = await open_staff(proxy, "anna", PASSWORD)
        visitor = await open_chat(proxy, anna)
        chat_id = visitor.chat_id
        await visitor.expect("counsellor.joined", name="Anna")
        await visitor.say("one", client_id="one")
        await anna.expect("message", text="one")
        await anna.say(chat_id, "two")
        seen = (await visitor.expect("message", text="two"))["seq"]

        # Both lose their connection, and one app process goes (a deploy, a crash): they come
        # back through the proxy, which takes them to the process that is left.
        await visitor.ws.close()
        await anna.ws.close()
        a.signal(signal.SIGKILL)
        await a.wait_exit()
        back = await open_visitor(proxy)
        await back.send(
            {"type": "resume", "chat_id": chat_id, "token": visitor.token, "last_seq": seen}
        )
        await back.expect("chat.resumed")
        anna_back = await open_staff(proxy, "anna", PASSWORD, available=False)
        assert [c["chat_id"] for c in anna_back.hello["chats"]] == [chat_id]
        await anna_back.say(chat_id, "three")
        await back.expect("message", text="three")
        await back.say("four", client_id="four")
        await anna_back.expect("message", text="four")
        # New visitors keep coming in, whichever process the proxy tries first.
        for _ in range(4):
            await (await open_visitor(proxy)).ws.close()
        await back.ws.close()
        await anna_back.ws.close()

    # nginx wrote nothing at all: no access line, no error line naming a client.
    assert proxy.output.read_bytes() == b""
    assert system_logs() == before
    # Nothing else in its directory either (the pid file goes when nginx stops).
    assert proxy.files_written() == set()
    # The app processes were told the client's address (X-Forwarded-For) and kept none of it:
    # the only address in their logs is their own, as they start.
    for app_process in (a, b):
        own = f"127.0.0.1:{app_process.port}"
        lines = app_process.log.read_text().splitlines()
        assert [line for line in lines if "127.0.0.1" in line.replace(own, "")] == []


async def test_the_proxy_passes_over_a_process_that_is_not_ready(
    tmp_path: Path, scale_settings: Callable[..., Settings]
) -> None:
    # One process on a Redis of its own, which goes away: that process is live but not ready.
    redis = RedisServer(tmp_path, appendonly=False)
    await redis.start()
    lonely = LyktaProcess(
        "lykta-0", process_env(scale_settings(redis_url=redis.url)), tmp_path / "lykta-0.log"
    )
    fine = LyktaProcess("lykta-1", process_env(scale_settings()), tmp_path / "lykta-1.log")
    try:
        await asyncio.gather(lonely.start(), fine.start())
        async with proxy_for([lonely, fine], tmp_path) as proxy:
            await redis.stop()
            async with httpx.AsyncClient(base_url=lonely.url) as direct:

                async def not_ready() -> bool:
                    return (await direct.get("/readyz")).status_code == 503

                await eventually(not_ready, what="the process without Redis not ready")
            # Through the proxy every answer comes from the process that is ready.
            trusting = ssl.create_default_context(cafile=tmp_path / "fullchain.pem")
            async with httpx.AsyncClient(base_url=proxy.url, verify=trusting) as http:
                answers = [await http.get("/readyz") for _ in range(6)]
            assert [r.status_code for r in answers] == [200] * 6
            assert all(r.json()["status"] == "ready" for r in answers)
    finally:
        await asyncio.gather(lonely.stop(), fine.stop())
        await redis.stop()
