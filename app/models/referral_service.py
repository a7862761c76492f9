from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import JSON, String, Uuid
from sqlalchemy.orm import Mapped, mapped_column

from app.kit.clock import utcnow
from app.kit.db import Base, UTCDateTime


class ReferralService(Base):
    """An entry of the referral directory: a service counsellors may point visitors to.

    Texts visitors see are kept per language ({"sv": ..., "en": ...}); contact details are
    validated and always shown as text.
    """

    __tablename__ = "referral_services"

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=uuid.uuid4)
    name: Mapped[str] = mapped_column(String(200), index=True)
    # What they help with, per language.
    description: Mapped[dict[str, str]] = mapped_column(JSON, default=dict)
    # Need tags from the fixed set in app/directory/schemas.py.
    needs: Mapped[list[str]] = mapped_column(JSON, default=list)
    # Languages the service itself can be reached in.
    languages: Mapped[list[str]] = mapped_column(JSON, default=list)
    phone: Mapped[str] = mapped_column(String(40), default="")
    email: Mapped[str] = mapped_column(String(254), default="")
    web: Mapped[str] = mapped_column(String(500), default="")
    opening_hours: Mapped[dict[str, str]] = mapped_column(JSON, default=dict)
    # A city, or "" for a national service.
    city: Mapped[str] = mapped_column(String(100), default="")
    notes: Mapped[dict[str, str]] = mapped_column(JSON, default=dict)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)
