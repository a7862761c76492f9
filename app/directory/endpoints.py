"""The referral directory over HTTP: counsellors search it, coordinators keep it (and move
it in and out as CSV)."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Query, Request, Response, status
from fastapi.responses import JSONResponse

from app.deps import SessionDep
from app.directory.schemas import NEEDS, ImportResult, ServiceInput, ServiceList, ServiceOut
from app.directory.service import ImportRefusedError, Search, directory_service, to_out
from app.kit.errors import REFUSALS_IN_JSON, ApiError
from app.kit.fields import CleanText
from app.kit.responses import CsvResponse
from app.staff.permissions import ManageDirectory, ReadDirectory

router = APIRouter(prefix="/api/directory", tags=["directory"])

SearchText = Annotated[str | None, Query(max_length=200), CleanText()]


@router.get("", response_model=ServiceList)
async def search_directory(
    session: SessionDep,
    actor: ReadDirectory,
    need: SearchText = None,
    language: SearchText = None,
    city: SearchText = None,
    q: SearchText = None,
) -> ServiceList:
    """Services by need tag, language, city (that city's, then national ones) and text."""
    if need and need not in NEEDS:
        raise ApiError("unknown_need", f"need must be one of: {', '.join(NEEDS)}")
    found = await directory_service.search(
        session, Search(need=need or None, language=language or None, city=city, text=q)
    )
    return ServiceList(services=[to_out(s) for s in found])


@router.post("", response_model=ServiceOut, status_code=status.HTTP_201_CREATED)
async def create_service(
    body: ServiceInput, session: SessionDep, actor: ManageDirectory
) -> ServiceOut:
    return to_out(await directory_service.create(session, body))


@router.get("/export.csv", response_class=CsvResponse, responses=REFUSALS_IN_JSON)
async def export_directory(session: SessionDep, actor: ManageDirectory) -> CsvResponse:
    """The whole directory as CSV (UTF-8 with a byte-order mark, for spreadsheets)."""
    text = await directory_service.export_csv(session)
    return CsvResponse(
        ("\ufeff" + text).encode(),
        headers={"Content-Disposition": 'attachment; filename="directory.csv"'},
    )


# The body is the CSV file itself, not JSON: declared here, read from the request below.
CSV_BODY = {
    "requestBody": {"required": True, "content": {"text/csv": {"schema": {"type": "string"}}}}
}


@router.post("/import", response_model=ImportResult, openapi_extra=CSV_BODY)
async def import_directory(
    request: Request, session: SessionDep, actor: ManageDirectory
) -> ImportResult | JSONResponse:
    """CSV in the body (as exported): every row is stored, or none and every problem is
    listed by row. A row with an id updates that entry; without one, it is a new entry."""
    raw = await request.body()
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise ApiError("invalid_csv", "the file must be UTF-8 text") from None
    try:
        created, updated = await directory_service.import_csv(session, text)
    except ImportRefusedError as refused:
        return JSONResponse(
            {
                "detail": refused.message,
                "code": refused.code,
                "errors": [e.to_dict() for e in refused.errors],
            },
            status_code=422,
        )
    return ImportResult(created=created, updated=updated)


@router.get("/{service_id}", response_model=ServiceOut)
async def get_service(
    service_id: uuid.UUID, session: SessionDep, actor: ReadDirectory
) -> ServiceOut:
    return to_out(await directory_service.get(session, service_id))


@router.put("/{service_id}", response_model=ServiceOut)
async def update_service(
    service_id: uuid.UUID, body: ServiceInput, session: SessionDep, actor: ManageDirectory
) -> ServiceOut:
    return to_out(await directory_service.update(session, service_id, body))


@router.delete("/{service_id}", status_code=status.HTTP_204_NO_CONTENT)
async def delete_service(
    service_id: uuid.UUID, session: SessionDep, actor: ManageDirectory
) -> Response:
    await directory_service.delete(session, service_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)
