"""The one settings class of Lykta, read from `LYKTA_*` environment variables."""

from __future__ import annotations

from functools import lru_cache
from typing import Annotated, Any, Literal

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

# Secrets shipped in the code base: fine on a laptop, refused anywhere else.
DEFAULT_SECRET_KEY = "development-only-secret-key-change-me"  # noqa: S105
# A published KEK: transcripts under it are readable by anyone with the source code.
DEFAULT_KEKS = "dev:ZGV2ZWxvcG1lbnQtb25seS1rZWstMzItYnl0ZXMhISE="

Environment = Literal["development", "production"]


class Settings(BaseSettings):
    """Deployment configuration; every field can be set as `LYKTA_<NAME>`."""

    model_config = SettingsConfigDict(env_prefix="LYKTA_", extra="ignore", frozen=True)

    environment: Environment = "development"
    database_url: str = "sqlite+aiosqlite:///./lykta.db"
    # Redis for several processes (e.g. redis://127.0.0.1:6379/0); unset: the in-process broker.
    redis_url: str | None = None
    # Every Redis key and channel of this deployment starts with it (several deployments, or
    # test runs, can share one Redis).
    redis_prefix: str = Field(default="lykta", min_length=1, max_length=64, pattern=r"^[\w.-]+$")
    # Redis through Sentinel: "host:port,host:port" of the sentinels and the name they know
    # the primary by (`redis_url`, if set, then gives only credentials and database number).
    redis_sentinels: str | None = Field(
        default=None, pattern=r"^\s*[\w.-]+:\d+\s*(,\s*[\w.-]+:\d+\s*)*$"
    )
    redis_sentinel_service: str = Field(default="lykta", min_length=1, pattern=r"^[\w.-]+$")
    # Writes count as done once this many replicas hold them (Redis `WAIT`): with Sentinel,
    # 1 makes a failover lose nothing a client was told had happened.
    redis_wait_replicas: int = Field(default=0, ge=0, le=10)
    secret_key: SecretStr = SecretStr(DEFAULT_SECRET_KEY)
    # Key-encryption keys for chat keys: "id:base64,id:base64"; the first wraps new chat keys,
    # all unwrap (rotation). Generate one with `lykta keys generate`.
    keks: SecretStr = SecretStr(DEFAULT_KEKS)

    host: str = "127.0.0.1"
    port: int = Field(default=8000, ge=0, le=65535)
    public_url: str = "http://127.0.0.1:8000"
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    # Lines of one kind that keep coming (a flood, an outage) are written once per this many
    # seconds, with how many there were (app/kit/logging.py, `Repeats`).
    log_repeat_seconds: float = Field(default=60.0, gt=0)

    # Staff sessions.
    session_idle_minutes: int = Field(default=60, ge=1)
    session_absolute_hours: int = Field(default=12, ge=1)
    # Staff accounts (docs/staff.md): TOTP for every role, short-lived one-time enrolment links,
    # sign-in slowed after a few failures and locked after more, per account and per client.
    totp_required: bool = True
    enrolment_hours: int = Field(default=24, ge=1, le=168)
    password_min_length: int = Field(default=12, ge=8, le=128)
    sign_in_slow_after: int = Field(default=3, ge=1)
    sign_in_lock_after: int = Field(default=10, ge=2)
    sign_in_client_lock_after: int = Field(default=30, ge=2)
    sign_in_lock_minutes: int = Field(default=15, ge=1)

    # WebSocket limits: frames larger than this are refused by the server before parsing.
    ws_max_frame_bytes: int = Field(default=64 * 1024, ge=1024)
    # Write each connection's frames once per event-loop turn, and let the app write a frame
    # without awaiting (app/web/websocket.py); off: uvicorn's own WebSocket protocol.
    websocket_adapter: bool = True
    # Per-connection flood control: a token bucket of `burst` frames refilled at `rate`/s.
    visitor_frame_rate: float = Field(default=5.0, gt=0)
    visitor_frame_burst: int = Field(default=20, ge=1)
    staff_frame_rate: float = Field(default=20.0, gt=0)
    staff_frame_burst: int = Field(default=60, ge=1)
    # How many frames over the limit a connection may send before it is closed.
    flood_tolerance: int = Field(default=20, ge=1)
    # Per-connection outgoing queue; a client that falls this far behind is told to reconnect.
    send_queue_size: int = Field(default=256, ge=8)

    # Per-client limits (keyed hashes of addresses; see app/abuse): requests per minute.
    http_rate_per_minute: int = Field(default=600, ge=1)
    # GET requests for the console's and the widget's fixed files and pages, counted apart.
    file_rate_per_minute: int = Field(default=6000, ge=1)
    sign_in_rate_per_minute: int = Field(default=10, ge=1)
    connection_rate_per_minute: int = Field(default=60, ge=1)
    max_body_bytes: int = Field(default=64 * 1024, ge=1024)
    # Reverse proxies whose X-Forwarded-For is believed (only for rate limiting, never logged).
    trusted_proxies: frozenset[str] = frozenset()
    # Per-client limit on chat frames that cost work (start, message), across connections.
    visitor_message_rate_per_minute: int = Field(default=120, ge=1)
    # How long a counsellor's block refuses new chats from the same keyed hash (at most a
    # day: the hashing key changes daily, see app/abuse).
    block_seconds: int = Field(default=24 * 3600, ge=1, le=24 * 3600)

    # Sites that may embed the visitor chat (`https://ngo.example,https://www.ngo.example`):
    # their pages may frame /chat/ and /widget/ and open the visitor WebSocket. Lykta's own
    # origin (public_url) is always allowed.
    embed_origins: Annotated[tuple[str, ...], NoDecode] = ()
    # Where the full chat page's quick exit goes unless the link names one (`?exit=`); an
    # embedding site sets its own with the loader's data-exit-url. Something neutral.
    widget_exit_url: str = Field(default="https://www.google.com/", pattern=r"^https?://\S+$")

    # Background work: how often deadlines (offers, grace periods) are checked.
    tick_seconds: float = Field(default=0.5, gt=0)
    # How often live chats are checked for visitors whose process died (and at start-up).
    sweep_seconds: float = Field(default=30.0, gt=0)
    heartbeat_seconds: float = Field(default=10.0, gt=0)
    # Queue positions and queue summaries are pushed at most this often.
    position_push_seconds: float = Field(default=1.0, gt=0)
    # A counsellor must submit the wrap-up within this time, or it is recorded as missing.
    wrapup_window_seconds: int = Field(default=3600, ge=60)

    # Rosters: a counsellor is on duty from this long before an assigned shift starts until
    # this long after it ends (so they can sign in early, and late visitors are answered).
    duty_before_minutes: int = Field(default=5, ge=0, le=120)
    duty_after_minutes: int = Field(default=0, ge=0, le=120)
    # Continuity codes (docs/continuity.md): how long a code lives after its last use, how
    # many code attempts (starts with a code, deletions) a client may make per window, how
    # long a returning visitor's chat waits for their own counsellor when that counsellor is
    # on duty but busy, and the Argon2id cost of the key that seals the handover note.
    continuity_code_days: int = Field(default=60, ge=1, le=365)
    continuity_attempts: int = Field(default=10, ge=1)
    continuity_attempt_window_seconds: int = Field(default=600, ge=10)
    # New mailbox threads one client may write per window (docs/mailbox.md); presenting a
    # mailbox code counts as a code attempt (continuity_attempts).
    mailbox_new_threads: int = Field(default=5, ge=1)
    mailbox_new_thread_window_seconds: int = Field(default=3600, ge=10)
    continuity_wait_seconds: int = Field(default=120, ge=5, le=3600)
    continuity_kdf_iterations: int = Field(default=3, ge=1, le=20)
    continuity_kdf_memory_kib: int = Field(default=64 * 1024, ge=8 * 1024, le=1024 * 1024)
    # Booked chats (docs/continuity.md): a chat started with the code this many minutes
    # before the booked time (until the continuity wait after it) is the booked chat, and
    # from then routing keeps the counsellor's last place free for it.
    booking_early_minutes: int = Field(default=10, ge=0, le=60)
    # /metrics answers only with `Authorization: Bearer <token>`; unset, /metrics is off.
    metrics_token: SecretStr | None = None
    # Statistics of wrap-ups, risk and "in danger" keep back a count from 1 to this minus one
    # (view, CSV and /metrics), and a mailbox median over fewer answered threads: too few to
    # show without pointing at someone. 1 shows every count.
    stats_small_count: int = Field(default=3, ge=1, le=100)

    @field_validator("embed_origins", mode="before")
    @classmethod
    def _split_origins(cls, value: Any) -> Any:
        from app.web.origins import OriginError, normalise_origin

        if isinstance(value, str) and value.lstrip().startswith("["):
            import json

            value = json.loads(value)
        elif isinstance(value, str):
            value = [part for part in (p.strip() for p in value.split(",")) if part]
        if not isinstance(value, list | tuple | set | frozenset):
            return value
        try:
            return tuple(sorted({normalise_origin(str(item)) for item in value}))
        except OriginError as exc:
            raise ValueError(str(exc)) from None

    @property
    def uses_redis(self) -> bool:
        """Redis (by URL or Sentinel) rather than the in-process broker."""
        return bool(self.redis_url or self.redis_sentinels)

    def sentinel_addresses(self) -> list[tuple[str, int]]:
        """`redis_sentinels` as (host, port) pairs."""
        pairs = []
        for item in (self.redis_sentinels or "").split(","):
            if item.strip():
                host, _, port = item.strip().rpartition(":")
                pairs.append((host, int(port)))
        return pairs

    @model_validator(mode="after")
    def _refuse_default_secrets(self) -> Settings:
        if self.environment != "development":
            if self.secret_key.get_secret_value() == DEFAULT_SECRET_KEY:
                raise ValueError(
                    "LYKTA_SECRET_KEY still has its development default; "
                    "set a long random value before running outside development"
                )
            if len(self.secret_key.get_secret_value()) < 32:
                raise ValueError("LYKTA_SECRET_KEY must be at least 32 characters")
            if any(k.strip().startswith("dev:") for k in self.keks.get_secret_value().split(",")):
                raise ValueError(
                    "LYKTA_KEKS still holds the published development KEK; "
                    "generate one with `lykta keys generate`"
                )
        if self.metrics_token is not None and len(self.metrics_token.get_secret_value()) < 24:
            raise ValueError("LYKTA_METRICS_TOKEN must be at least 24 characters")
        from app.web.origins import OriginError, own_origin

        try:
            own_origin(self.public_url)
        except OriginError as exc:
            raise ValueError(f"LYKTA_PUBLIC_URL: {exc}") from None
        plain = [
            o for o in self.embed_origins if o.startswith("http:") and not o.endswith(".onion")
        ]
        if plain and not self.is_development:
            # Onion services are encrypted by Tor and have no https.
            raise ValueError(
                "LYKTA_EMBED_ORIGINS must all be https (or .onion) outside development"
            )
        from app.chats.crypto import KekConfigError, parse_keks

        try:
            parse_keks(self.keks.get_secret_value())
        except KekConfigError as exc:
            raise ValueError(f"LYKTA_KEKS: {exc}") from None
        return self

    @property
    def is_development(self) -> bool:
        return self.environment == "development"

    @property
    def is_https(self) -> bool:
        return self.public_url.startswith("https://")

    @property
    def visitor_origins(self) -> frozenset[str]:
        """Origins whose pages may open a visitor chat: ours and the embedding sites."""
        from app.web.origins import own_origin

        return frozenset({own_origin(self.public_url), *self.embed_origins})


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """Settings from the environment, read once per process."""
    return Settings()
