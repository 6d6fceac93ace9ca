"""Process settings: the one place environment variables are read."""

from __future__ import annotations

import json
import os
from functools import lru_cache
from pathlib import Path

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    """Every setting of the API, worker and CLI, read from the environment or `.env`."""

    model_config = SettingsConfigDict(env_file=".env", env_file_encoding="utf-8", extra="ignore")

    temporal_address: str = Field("localhost:7233", description="Temporal frontend gRPC host:port.")
    temporal_namespace: str = Field("default", description="Temporal namespace for every run.")
    temporal_task_queue: str = Field("workflow-engine", description="Task queue the worker polls.")
    temporal_ui_port: int = Field(8080, description="Port of the Temporal Web UI (dev server).")
    temporal_ui_url: str | None = Field(
        None, description="Base URL of the Temporal Web UI the console links runs to; default http://localhost:<port>."
    )
    temporal_http_port: int = Field(7243, description="Port of the dev server's Temporal HTTP API (`make run`).")
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
    workflows_poll_seconds: float = Field(
        2.0, ge=0, description="How often the API looks for added or changed files in WORKFLOWS_DIR (0 = never)."
    )

    schedules_sync_seconds: float = Field(
        30.0,
        ge=0,
        description="How often the API makes Temporal Schedules match the registry again (0 = only at start and "
        "after changes).",
    )

    log_level: str = Field("INFO", description="Log level of every process.")

    shell_enabled: bool = Field(False, description="Allow `shell` tasks to run commands on workers.")
    http_allowlist: str = Field(
        "localhost,127.0.0.0/8,::1/128",
        description="Comma-separated hosts/CIDRs `http_request` may reach although private or loopback.",
    )
    http_max_response_bytes: int = Field(10 * 1024 * 1024, description="Largest HTTP response body read.")
    secrets_env_prefix: str = Field("WFE_SECRET_", description="`secrets.NAME` reads env var PREFIX+NAME.")
    secrets_file: Path | None = Field(None, description="Optional JSON or .env file of secrets.")
    output_inline_limit_bytes: int = Field(
        256 * 1024, ge=0, description="Payloads (e.g. task outputs) over this size are stored in the database."
    )
    task_log_max_bytes: int = Field(
        1024 * 1024, ge=0, description="Log bytes kept per task attempt; past this a truncation marker ends its log."
    )
    plugins: str = Field("", description="Comma-separated modules whose @plugin activities are registered.")
    python_modules: str = Field(
        "",
        description="Comma-separated installed modules or packages (with their submodules) `python` tasks may call "
        "besides those in WORKFLOWS_DIR and PLUGINS; os, subprocess, builtins and the like are refused anyway.",
    )
    fan_out_batch_size: int = Field(
        1000, ge=1, le=2000, description="A `for_each` over more items runs in child workflows of this many items."
    )
    worker_max_concurrent_activities: int = Field(100, description="Activities one worker runs at once.")
    worker_activity_concurrency: str = Field(
        "",
        description="Per-kind limits `kind=N,...` (e.g. `shell=2,http_request=50`); other kinds get "
        "WORKER_MAX_CONCURRENT_ACTIVITIES.",
    )
    worker_max_cached_workflows: int = Field(
        500, ge=0, description="Workflows a worker keeps in memory; others (e.g. paused runs) are replayed on demand."
    )
    worker_workflow_sandbox: bool = Field(
        False,
        description="Run the interpreter in Temporal's workflow sandbox (slower: 1/3 more worker CPU per step); "
        "off, its determinism is checked in CI by replaying every recorded history in the sandbox.",
    )
    worker_metrics_port: int = Field(
        0, ge=0, le=65535, description="Port a worker serves its Prometheus metrics (`wfe_*`) on; 0 = not served."
    )
    worker_sdk_metrics_port: int = Field(
        0, ge=0, le=65535, description="Port a worker serves the Temporal SDK's metrics (`temporal_*`) on; 0 = off."
    )
    worker_metrics_host: str = Field("127.0.0.1", description="Address both worker metrics ports bind to.")
    api_url: str | None = Field(None, description="API base URL the CLI talks to (default: from API_HOST/API_PORT).")
    api_token: str | None = Field(None, description="Bearer token the CLI sends to the API.")
    console_url: str | None = Field(
        None, description="Public base URL of the API that notifications link to (default: from API_HOST/API_PORT)."
    )
    smtp_host: str | None = Field(None, description="SMTP server email notifications go through; unset = no email.")
    smtp_port: int = Field(25, ge=1, le=65535, description="Port of SMTP_HOST.")
    smtp_username: str | None = Field(None, description="SMTP login user (with SMTP_PASSWORD); unset = no login.")
    smtp_password: str | None = Field(None, description="SMTP login password.")
    smtp_from: str = Field("workflow-engine@localhost", description="Sender address of email notifications.")
    smtp_starttls: bool = Field(False, description="Upgrade the SMTP connection with STARTTLS before logging in.")
    approval_signing_key: str | None = Field(
        None, description="Shared secret the API signs approval decisions with and workers verify (HMAC-SHA256)."
    )
    approval_signing_key_file: Path = Field(
        Path("./data/approval-signing.key"),
        description="Where the signing key is kept (created on first use) when APPROVAL_SIGNING_KEY is unset.",
    )
    egress_deny: str = Field(
        "",
        description="More `host:port` (or `host:*`) our infrastructure listens on, never reachable by "
        "`http_request` whatever HTTP_ALLOWLIST says (Temporal, its UI and HTTP API, the API and the database "
        "are always included).",
    )
    api_tokens: str = Field(
        "",
        description="Comma-separated `user:role+role:token` entries; empty = local mode (loopback only, no auth).",
    )
    api_max_body_bytes: int = Field(
        4 * 1024 * 1024,
        ge=1024,
        description="Largest request body the API reads (413 beyond, refused without reading it whole); YAML "
        "definitions have their own 1 MiB cap.",
    )
    api_max_json_depth: int = Field(
        64, ge=2, le=256, description="Deepest nesting of arrays and objects in a JSON request body (422 beyond)."
    )
    api_docs_enabled: bool = Field(
        True, description="Serve `/docs`, `/redoc` and `/openapi.json` (open without a token, like `/health`)."
    )
    otel_exporter_otlp_endpoint: str | None = Field(
        None, description="OTLP/HTTP base URL traces are sent to (e.g. http://collector:4318); unset = no tracing."
    )
    otel_service_name: str = Field(
        "workflow-engine", description="Traces name their service `<this>-api` or `<this>-worker` after the process."
    )

    @field_validator("worker_activity_concurrency")
    @classmethod
    def _kind_limits(cls, value: str) -> str:
        for entry in filter(None, (part.strip() for part in value.split(","))):
            kind, sep, limit = entry.partition("=")
            if not sep or not kind.strip() or not limit.strip().isdigit() or int(limit) < 1:
                raise ValueError(f"{entry!r} is not `kind=N` with N >= 1 (e.g. shell=2,http_request=50)")
        return value

    @field_validator("egress_deny")
    @classmethod
    def _endpoints(cls, value: str) -> str:
        for entry in filter(None, (part.strip() for part in value.split(","))):
            host, sep, port = entry.rpartition(":")
            if not sep or not host or not (port == "*" or port.isdigit()):
                raise ValueError(f"{entry!r} is not `host:port` or `host:*` (e.g. temporal-ui:8080,api:8000)")
        return value

    @property
    def activity_concurrency(self) -> dict[str, int]:
        """Return the per-kind activity limits of WORKER_ACTIVITY_CONCURRENCY."""
        pairs = (part.partition("=") for part in self.worker_activity_concurrency.split(",") if part.strip())
        return {kind.strip(): int(limit) for kind, _, limit in pairs}

    @property
    def http_allowlist_entries(self) -> list[str]:
        """Return the allowlist as a list of hosts and CIDRs."""
        return [entry.strip() for entry in self.http_allowlist.split(",") if entry.strip()]

    @property
    def api_base_url(self) -> str:
        """Return the URL the CLI reaches the API at."""
        return self.api_url or f"http://{self.api_host}:{self.api_port}"

    @property
    def console_base_url(self) -> str:
        """Return the public base URL notifications link to (console pages under `/ui/`), without a final slash."""
        if self.console_url:
            return self.console_url.rstrip("/")
        # an API bound to every interface or to loopback is reached, from this machine, at localhost
        host = "localhost" if self.api_host in ("", "0.0.0.0", "::", "127.0.0.1", "::1") else self.api_host
        return f"http://{host}:{self.api_port}"

    @property
    def temporal_ui_base(self) -> str:
        """Return the Temporal Web UI's base URL (no trailing slash)."""
        return (self.temporal_ui_url or f"http://localhost:{self.temporal_ui_port}").rstrip("/")

    def read_secret(self, name: str) -> str | None:
        """Return secret NAME from the environment (PREFIX+NAME), else from the secrets file, else None."""
        value = os.environ.get(f"{self.secrets_env_prefix}{name}")
        if value is not None:
            return value
        return _secrets_file(self.secrets_file).get(name) if self.secrets_file else None

    @property
    def plugin_modules(self) -> list[str]:
        """Return the plugin module names."""
        return [entry.strip() for entry in self.plugins.split(",") if entry.strip()]

    @property
    def python_module_names(self) -> list[str]:
        """Return the module names of PYTHON_MODULES."""
        return [entry.strip() for entry in self.python_modules.split(",") if entry.strip()]


def _secrets_file(path: Path) -> dict[str, str]:
    """Read a JSON object or KEY=VALUE lines; a missing file holds no secrets."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return {}
    if text.lstrip().startswith("{"):
        data = json.loads(text)
        return {str(k): str(v) for k, v in data.items()} if isinstance(data, dict) else {}
    pairs = (line.split("=", 1) for line in text.splitlines() if "=" in line and not line.lstrip().startswith("#"))
    return {key.strip(): value.strip() for key, value in pairs}


@lru_cache
def get_settings() -> Settings:
    """Return the process-wide settings, read once."""
    return Settings()
