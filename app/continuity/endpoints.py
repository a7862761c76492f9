"""The visitor's HTTP way to delete a continuity code (the code in the body, never the URL)."""

from __future__ import annotations

from fastapi import APIRouter, Request, Response
from pydantic import BaseModel, ConfigDict

from app.abuse.visitor_requests import BodyRefusal, json_answer, visitor_code_body
from app.chats.frames import ContinuityCode
from app.deps import RuntimeDep
from app.staff.permissions import public

router = APIRouter(prefix="/api/visitor/continuity", tags=["visitor"])


class DeleteRequest(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    code: ContinuityCode


@router.post("/delete", dependencies=[public(embedding_sites=True)])
async def delete_code(request: Request, runtime: RuntimeDep) -> Response:
    """Delete a continuity code. The answer is the same whether the code existed or not."""
    body = await visitor_code_body(request, runtime, DeleteRequest)
    if isinstance(body, BodyRefusal):
        return body.answer(with_code=False)
    await runtime.continuity.delete(body.code)
    return json_answer(200, {"status": "deleted"})
