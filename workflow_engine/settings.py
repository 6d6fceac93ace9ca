"""Process settings: the one place environment variables are read."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    """Every setting of the API, worker and CLI, read from the environment or `.env`."""

    model_config = SettingsConfigDict(env_file=".env", env_file_encoding="utf-8", extra="ignore")

    temporal_address: str = Field("localhost:7233", description="Temporal frontend gRPC host:port.")
    temporal_namespace: str = Field("default", description="Temporal namespace for every run.")
    temporal_task_queue: str = Field("workflow-engine", description="Task queue the worker polls.")
    temporal_ui_port: int = Field(8080, description="Port of the Temporal Web UI (dev server).")
    temporal_tls: bool = Field(False, description="Use TLS to reach Temporal (Temporal Cloud).")
    temporal_api_key: str | None = Field(None, description="API key for Temporal Cloud.")
    temporal_db_file: Path = Field(
        Path("./data/temporal.db"), description="SQLite file of the local Temporal dev server."
    )

    database_url: str = Field(
        "sqlite+aiosqlite:///./data/workflow_engine.db",
        description="SQLAlchemy async URL of the registry database.",
    )

    api_host: str = Field("127.0.0.1", description="Address the API binds to.")
    api_port: int = Field(8000, description="Port the API listens on.")

    workflows_dir: Path = Field(Path("./workflows"), description="Directory of YAML definitions.")

    log_level: str = Field("INFO", description="Log level of every process.")


@lru_cache
def get_settings() -> Settings:
    """Return the process-wide settings, read once."""
    return Settings()
