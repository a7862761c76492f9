"""The Lykta ASGI application."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from importlib.metadata import PackageNotFoundError
from importlib.metadata import version as package_version

from fastapi import FastAPI
from fastapi.exceptions import RequestValidationError
from sqlalchemy.engine import make_url

from app.abuse.middleware import RequestLimits
from app.admin import endpoints as admin_endpoints
from app.audit import endpoints as audit_endpoints
from app.bookings import endpoints as booking_endpoints
from app.bookings import mailbox as booking_mailbox
from app.broker.base import Broker, BrokerUnavailableError
from app.broker.memory import MemoryBroker
from app.chats import endpoints as visitor_endpoints
from app.chats import staff_ws, visitor_ws
from app.console import endpoints as console_endpoints
from app.continuity import endpoints as continuity_endpoints
from app.directory import endpoints as directory_endpoints
from app.kit.errors import REFUSALS, ApiError, api_error_response, invalid_request_response
from app.kit.logging import flush_repeats
from app.lines import endpoints as line_endpoints
from app.mailbox import endpoints as mailbox_endpoints
from app.mailbox import staff_endpoints as mailbox_staff_endpoints
from app.roster import endpoints as roster_endpoints
from app.runtime import Runtime
from app.settings import Settings, get_settings
from app.staff import endpoints as staff_endpoints
from app.stats import endpoints as stats_endpoints
from app.web import health, home
from app.web.headers import SecurityHeaders
from app.widget import endpoints as widget_endpoints
from app.widget import pages as widget_pages

logger = logging.getLogger(__name__)


def version() -> str:
    try:
        return package_version("lykta")
    except PackageNotFoundError:
        return "(not installed)"


def create_app(settings: Settings | None = None, *, broker: Broker | None = None) -> FastAPI:
    """The app; `broker` (tests) continues an existing broker's state, as Redis would."""
    settings = settings or get_settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        # The widget's files are read and compressed now, not by the first visitor's request.
        widget_pages.assets()
        runtime = Runtime.build(settings, broker)
        app.state.runtime = runtime
        await runtime.start()
        # What an operator needs to know it is the right process: nothing secret, no visitor.
        logger.info(
            "Lykta %s listening on %s: database %s, broker %s, lines %s",
            version(),
            f"http://{settings.host}:{settings.port}",
            make_url(settings.database_url).get_backend_name(),
            "in-process" if isinstance(runtime.broker, MemoryBroker) else "redis",
            ", ".join(runtime.lines.keys()) or "none yet",
        )
        try:
            yield
        finally:
            await runtime.stop()
            flush_repeats()

    app = FastAPI(
        title="Lykta",
        version=version(),
        lifespan=lifespan,
        docs_url="/api/docs" if settings.is_development else None,
        redoc_url=None,
        openapi_url="/api/openapi.json" if settings.is_development else None,
        # Every operation's refusals share one schema (app/kit/errors.py).
        responses=REFUSALS,
    )
    # The last added runs first: security headers wrap everything, even refusals of the limits.
    app.add_middleware(RequestLimits)
    app.add_middleware(SecurityHeaders, settings=settings)
    app.include_router(visitor_ws.router)
    app.include_router(visitor_endpoints.router)
    app.include_router(staff_ws.router)
    app.include_router(staff_endpoints.router)
    app.include_router(staff_endpoints.enrolment_router)
    app.include_router(line_endpoints.router)
    app.include_router(roster_endpoints.router)
    app.include_router(roster_endpoints.feeds)
    app.include_router(stats_endpoints.router)
    app.include_router(stats_endpoints.metrics_router)
    app.include_router(audit_endpoints.router)
    app.include_router(admin_endpoints.router)
    app.include_router(directory_endpoints.router)
    app.include_router(continuity_endpoints.router)
    app.include_router(booking_endpoints.visitor_router)
    app.include_router(booking_endpoints.router)
    app.include_router(booking_mailbox.router)
    app.include_router(booking_mailbox.visitor_router)
    app.include_router(mailbox_endpoints.router)
    app.include_router(mailbox_staff_endpoints.router)
    app.include_router(widget_endpoints.router)
    app.include_router(console_endpoints.router)
    app.include_router(home.router)
    app.include_router(health.router)
    app.add_exception_handler(ApiError, api_error_response)
    app.add_exception_handler(BrokerUnavailableError, health.broker_unavailable_response)
    app.add_exception_handler(RequestValidationError, invalid_request_response)
    return app
