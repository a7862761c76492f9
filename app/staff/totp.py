"""Second factor: TOTP (RFC 6238, via pyotp) and single-use recovery codes.

TOTP secrets are stored sealed (AES-256-GCM under a key derived from LYKTA_SECRET_KEY), so a
copy of the database alone does not give anyone codes. Changing LYKTA_SECRET_KEY therefore
means every staff member enrols TOTP again (a coordinator resets it). A code is accepted
once: the accepted time step is stored and any code of that step or an earlier one is
refused (see StaffRepository.advance_totp_step). Recovery codes carry 80 random bits and are
kept only as their SHA-256.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import os
import secrets
import time
from dataclasses import dataclass

import pyotp
import segno
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

ISSUER = "Lykta"
STEP_SECONDS = 30
# Codes of the step before and after now are accepted too (clock drift, typing time).
DRIFT_STEPS = 1
RECOVERY_CODES = 10
_RECOVERY_ALPHABET = "abcdefghjkmnpqrstuvwxyz23456789"  # no 0/o, 1/l/i look-alikes
_RECOVERY_LENGTH = 16  # 16 symbols of a 31-letter alphabet: 79 bits


def new_secret() -> str:
    return pyotp.random_base32()


class SealError(ValueError):
    """A sealed secret does not open under this deployment's key."""


def _key(secret_key: str) -> AESGCM:
    derived = HKDF(
        algorithm=hashes.SHA256(), length=32, salt=None, info=b"lykta totp secret v1"
    ).derive(secret_key.encode())
    return AESGCM(derived)


def seal(secret_key: str, secret: str, *, bound_to: str) -> str:
    """Encrypt a TOTP secret, bound to its staff id so it cannot be moved to another account."""
    nonce = os.urandom(12)
    sealed = _key(secret_key).encrypt(nonce, secret.encode(), bound_to.encode())
    return base64.urlsafe_b64encode(nonce + sealed).decode()


def unseal(secret_key: str, sealed: str, *, bound_to: str) -> str:
    try:
        raw = base64.urlsafe_b64decode(sealed.encode())
        return _key(secret_key).decrypt(raw[:12], raw[12:], bound_to.encode()).decode()
    except (InvalidTag, ValueError, binascii.Error) as exc:
        raise SealError("the TOTP secret does not open under LYKTA_SECRET_KEY") from exc


def current_step(now: float | None = None) -> int:
    return int((time.time() if now is None else now) // STEP_SECONDS)


def matching_step(secret: str, code: str, *, after: int | None, now: float | None = None) -> int:
    """The time step whose code this is (newest first), or -1; steps up to `after` are spent."""
    code = code.strip().replace(" ", "")
    if len(code) != 6 or not code.isdigit():
        return -1
    totp = pyotp.TOTP(secret)
    step = current_step(now)
    for candidate in range(step + DRIFT_STEPS, step - DRIFT_STEPS - 1, -1):
        if after is not None and candidate <= after:
            continue
        if hmac.compare_digest(totp.at(candidate * STEP_SECONDS), code):
            return candidate
    return -1


def provisioning_uri(secret: str, username: str) -> str:
    return pyotp.TOTP(secret).provisioning_uri(name=username, issuer_name=ISSUER)


def qr_png_data_uri(uri: str) -> str:
    """The otpauth URI as a QR code, a PNG data URI (made here: nothing from a third party)."""
    return str(segno.make(uri, error="m").png_data_uri(scale=6, border=4))


def qr_text(uri: str) -> str:
    """The QR code drawn with block characters, for a terminal."""
    matrix = segno.make(uri, error="m").matrix
    size = len(matrix)
    border = 2
    rows = [[0] * (size + 2 * border) for _ in range(border)]
    rows += [[0] * border + list(row) + [0] * border for row in matrix]
    rows += [[0] * (size + 2 * border) for _ in range(border)]
    # Two rows per text line: upper half block, lower half block, full block or space.
    glyphs = {(0, 0): "█", (1, 0): "▄", (0, 1): "▀", (1, 1): " "}
    out = []
    for top in range(0, len(rows), 2):
        bottom = rows[top + 1] if top + 1 < len(rows) else [0] * len(rows[0])
        out.append("".join(glyphs[(a, b)] for a, b in zip(rows[top], bottom, strict=True)))
    return "\n".join(out)


@dataclass(frozen=True, slots=True)
class RecoveryCodes:
    codes: list[str]
    digests: list[str]


def new_recovery_codes(count: int = RECOVERY_CODES) -> RecoveryCodes:
    codes = []
    for _ in range(count):
        raw = "".join(secrets.choice(_RECOVERY_ALPHABET) for _ in range(_RECOVERY_LENGTH))
        codes.append("-".join(raw[i : i + 4] for i in range(0, _RECOVERY_LENGTH, 4)))
    return RecoveryCodes(codes, [recovery_digest(code) for code in codes])


def normalise_recovery_code(code: str) -> str:
    return "".join(ch for ch in code.casefold() if ch.isalnum())


def recovery_digest(code: str) -> str:
    return hashlib.sha256(normalise_recovery_code(code).encode()).hexdigest()


def looks_like_recovery_code(code: str) -> bool:
    return len(normalise_recovery_code(code)) == _RECOVERY_LENGTH
