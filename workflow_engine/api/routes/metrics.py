"""`GET /metrics`: the API's Prometheus metrics, for callers holding the viewer role (open in local mode)."""

from __future__ import annotations

from fastapi import APIRouter, Request, Response

from workflow_engine.api.auth import Viewer
from workflow_engine.api.deps import ConnectionDep
from workflow_engine.api.metrics import ApprovalsGauge
from workflow_engine.metrics import API_REGISTRY, exposition

router = APIRouter(tags=["metrics"])
_APPROVALS = ApprovalsGauge()


@router.get(
    "/metrics",
    response_class=Response,
    responses={200: {"description": "Prometheus text exposition format.", "content": {"text/plain": {}}}},
)
async def metrics(_caller: Viewer, request: Request, connection: ConnectionDep) -> Response:
    """Return the API's metrics (requests by route and status, latency, runs started, approvals waiting)."""
    await _APPROVALS.refresh(connection)
    body, content_type = exposition(API_REGISTRY, request.headers.get("accept"))
    return Response(body, media_type=content_type)
