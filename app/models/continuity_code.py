from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import ForeignKey, LargeBinary, String, Uuid
from sqlalchemy.orm import Mapped, mapped_column

from app.kit.db import Base, UTCDateTime


class ContinuityCode(Base):
    """A visitor's way back to the same counsellor, without an identity.

    Only a keyed hash of the code is kept; the counsellor's handover note is sealed under a
    key derived from the code itself, so neither a copy of this table nor the NGO can read it
    without the visitor's words (docs/continuity.md).
    """

    __tablename__ = "continuity_codes"

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=uuid.uuid4)
    # HMAC-SHA256 of the normalised code under a key derived from the deployment's secret.
    digest: Mapped[str] = mapped_column(String(64), unique=True)
    line_key: Mapped[str] = mapped_column(
        String(32), ForeignKey("lines.key", ondelete="CASCADE"), index=True
    )
    staff_id: Mapped[uuid.UUID] = mapped_column(
        Uuid, ForeignKey("staff.id", ondelete="CASCADE"), index=True
    )
    # Renewed at each use; rounded up to the hour so it tells no finer time of a chat.
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime, index=True)
    # Argon2id salt, AES-GCM nonce and the sealed note (authenticated with the digest).
    kdf_salt: Mapped[bytes] = mapped_column(LargeBinary(32))
    note_nonce: Mapped[bytes] = mapped_column(LargeBinary(12))
    note_sealed: Mapped[bytes] = mapped_column(LargeBinary(8192))
