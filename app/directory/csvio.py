"""The referral directory as CSV, as pure code: export, and an import that reports every
broken row (the caller stores nothing unless every row is good).

Columns: id, name, needs and languages (separated by ";"), phone, email, web, city (empty: a
national service), and per language `description_<lang>`, `opening_hours_<lang>`,
`notes_<lang>`. Cells that a spreadsheet would run as a formula are written with a leading
apostrophe, which the import removes again.
"""

from __future__ import annotations

import csv
import io
import re
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from pydantic import ValidationError

from app.directory.schemas import ServiceInput, ServiceOut

FIXED = ("id", "name", "needs", "languages", "phone", "email", "web", "city")
TEXTS = ("description", "opening_hours", "notes")
MAX_ROWS = 2000
_TEXT_COLUMN = re.compile(
    r"^(description|opening_hours|notes)_([A-Za-z]{2,3}(?:-[A-Za-z0-9]{2,8})?)$"
)
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


@dataclass(frozen=True, slots=True)
class RowError:
    row: int  # as a spreadsheet numbers it: the header is row 1
    field: str
    message: str

    def to_dict(self) -> dict[str, Any]:
        return {"row": self.row, "field": self.field, "message": self.message}


@dataclass(frozen=True, slots=True)
class Row:
    row: int
    id: uuid.UUID | None
    service: ServiceInput


def _safe(cell: str) -> str:
    return "'" + cell if cell.startswith(_FORMULA_START) else cell


def _unsafe(cell: str) -> str:
    if cell.startswith("'") and cell[1:2] and cell[1:].startswith(_FORMULA_START):
        return cell[1:]
    return cell


def export(services: Iterable[ServiceOut]) -> str:
    items = list(services)
    languages = sorted({lang for s in items for t in TEXTS for lang in getattr(s, t)})
    header = [*FIXED, *(f"{t}_{lang}" for t in TEXTS for lang in languages)]
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(header)
    for s in items:
        row = [
            str(s.id),
            s.name,
            ";".join(s.needs),
            ";".join(s.languages),
            s.phone,
            s.email,
            s.web,
            s.city,
        ]
        row += [getattr(s, t).get(lang, "") for t in TEXTS for lang in languages]
        writer.writerow([_safe(c) for c in row])
    return out.getvalue()


def _split(cell: str) -> list[str]:
    return [part.strip() for part in re.split(r"[;,]", cell) if part.strip()]


def parse(text: str) -> list[Row] | list[RowError]:
    """Every row, or every problem (header problems are row 1)."""
    text = text.removeprefix("\ufeff")
    try:
        reader = csv.reader(io.StringIO(text, newline=""), strict=True)
        lines = list(reader)
    except csv.Error as exc:
        return [RowError(1, "file", f"not readable as CSV: {exc}")]
    if not lines:
        return [RowError(1, "file", "the file is empty")]
    header = [h.strip().lower() for h in lines[0]]
    errors: list[RowError] = []
    for name in header:
        if name not in FIXED and not _TEXT_COLUMN.match(name):
            errors.append(RowError(1, name or "(empty)", "unknown column"))
    if len(set(header)) != len(header):
        errors.append(RowError(1, "header", "a column appears twice"))
    for required in ("name", "needs"):
        if required not in header:
            errors.append(RowError(1, required, "missing column"))
    if errors:
        return errors
    body = lines[1:]
    if len(body) > MAX_ROWS:
        return [RowError(1, "file", f"at most {MAX_ROWS} rows at a time")]
    rows: list[Row] = []
    seen_ids: set[uuid.UUID] = set()
    for offset, cells in enumerate(body):
        number = offset + 2
        if not any(c.strip() for c in cells):
            continue  # blank lines are not rows
        if len(cells) != len(header):
            errors.append(
                RowError(number, "row", f"has {len(cells)} cells; the header has {len(header)}")
            )
            continue
        values = {h: _unsafe(c.strip()) for h, c in zip(header, cells, strict=True)}
        service_id: uuid.UUID | None = None
        if values.get("id"):
            try:
                service_id = uuid.UUID(values["id"])
            except ValueError:
                errors.append(
                    RowError(
                        number, "id", "not an id from an export (leave it empty for a new entry)"
                    )
                )
                continue
            if service_id in seen_ids:
                errors.append(RowError(number, "id", "the same id is on an earlier row"))
                continue
            seen_ids.add(service_id)
        data: dict[str, Any] = {
            "name": values.get("name", ""),
            "needs": _split(values.get("needs", "")),
            "languages": _split(values.get("languages", "")),
            "phone": values.get("phone", ""),
            "email": values.get("email", ""),
            "web": values.get("web", ""),
            "city": values.get("city", ""),
        }
        for kind in TEXTS:
            data[kind] = {}
        for column, value in values.items():
            match = _TEXT_COLUMN.match(column)
            if match and value:
                data[match.group(1)][match.group(2)] = value
        try:
            rows.append(Row(number, service_id, ServiceInput.model_validate(data)))
        except ValidationError as exc:
            for problem in exc.errors(include_url=False, include_input=False):
                where = ".".join(str(p) for p in problem["loc"]) or "row"
                message = str(problem["msg"]).removeprefix("Value error, ")
                errors.append(RowError(number, where, message))
    return errors if errors else rows
