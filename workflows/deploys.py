"""Functions of the deploy example: a release rolled out to one environment, simulated offline."""

import time
from datetime import UTC, datetime


def roll_out(environment: str, version: str, seconds: float) -> dict[str, object]:
    """Roll `version` out to `environment` (here: wait `seconds`) and say when it started and ended (UTC)."""
    started = datetime.now(UTC)
    time.sleep(seconds)
    return {"environment": environment, "version": version, "started_at": started.isoformat(),
            "finished_at": datetime.now(UTC).isoformat()}  # fmt: skip
