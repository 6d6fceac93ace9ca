"""`GET /health`: is the API up, and can it reach its database and Temporal."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import JSONResponse
from sqlalchemy import text

from workflow_engine.api.deps import ConnectionDep, SessionsDep
from workflow_engine.api.schemas import Health
from workflow_engine.errors import EngineError

router = APIRouter(tags=["health"])


@router.get("/health", response_model=Health, responses={503: {"model": Health}})
async def health(sessions: SessionsDep, connection: ConnectionDep) -> JSONResponse:
    """Check the database and Temporal; 200 when both answer, 503 otherwise."""
    database = temporal = "ok"
    try:
        async with sessions() as session:
            await session.execute(text("SELECT 1"))
    except Exception as exc:  # noqa: BLE001 - report any database failure as a health state
        database = f"error: {type(exc).__name__}: {exc}"
    try:
        client = await connection.get()
        await client.service_client.check_health()
    except EngineError as exc:
        temporal = f"error: {exc.message}"
    except Exception as exc:  # noqa: BLE001 - any RPC failure is a health state
        temporal = f"error: {type(exc).__name__}: {exc}"
    body = Health(status="ok" if database == temporal == "ok" else "degraded", database=database, temporal=temporal)
    return JSONResponse(body.model_dump(), status_code=200 if body.status == "ok" else 503)
