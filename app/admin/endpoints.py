"""Deployment settings, for admins.

The deployment itself (database, broker, secrets, KEKs, TOTP policy) is configured through
`LYKTA_*` variables by whoever runs the servers, and is deliberately read-only here: a stolen
admin session must not be able to switch off TOTP or swap a key. Admins see the effective,
non-secret settings, and manage coordinator and admin accounts (app/staff/endpoints.py).
"""

from __future__ import annotations

from fastapi import APIRouter
from pydantic import BaseModel

from app.deps import RuntimeDep
from app.staff.permissions import Deployment

router = APIRouter(prefix="/api/admin", tags=["admin"])


class DeploymentRead(BaseModel):
    environment: str
    public_url: str
    database: str
    broker: str
    kek_ids: list[str]
    totp_required: bool
    session_idle_minutes: int
    session_absolute_hours: int
    enrolment_hours: int
    password_min_length: int
    sign_in_slow_after: int
    sign_in_lock_after: int
    sign_in_client_lock_after: int
    sign_in_lock_minutes: int
    http_rate_per_minute: int
    sign_in_rate_per_minute: int
    connection_rate_per_minute: int
    ws_max_frame_bytes: int
    max_body_bytes: int


@router.get("/deployment", response_model=DeploymentRead)
async def deployment(runtime: RuntimeDep, admin: Deployment) -> DeploymentRead:
    """The effective settings without secrets: which backends, which policies, which key ids."""
    from app.chats.crypto import parse_keks

    settings = runtime.settings
    return DeploymentRead(
        environment=settings.environment,
        public_url=settings.public_url,
        database=settings.database_url.split(":", 1)[0].split("+", 1)[0],
        broker="redis" if settings.uses_redis else "memory",
        kek_ids=[kek_id for kek_id, _ in parse_keks(settings.keks.get_secret_value())],
        **{
            name: getattr(settings, name)
            for name in DeploymentRead.model_fields
            if name not in {"environment", "public_url", "database", "broker", "kek_ids"}
        },
    )
