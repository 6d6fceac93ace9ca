"""Static checks of the packaging: docker-compose.yml (both shapes), Dockerfile, .env.example.

No Docker engine is needed: the files are parsed and checked against each other and against
`workflow_engine.settings.Settings`, so a renamed setting or a miswired service fails here first.
Shapes: `docker compose up -d` starts the infrastructure only (worker and API on the host, README
"Production"); `docker compose --profile app up -d` adds migrate, the API and the workers.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import yaml
from pydantic import TypeAdapter

from workflow_engine.settings import Settings

ROOT = Path(__file__).resolve().parents[1]
COMPOSE_FILE = ROOT / "docker-compose.yml"
ENV_EXAMPLE = ROOT / ".env.example"
DOCKERFILE = ROOT / "Dockerfile"
DOCKERIGNORE = ROOT / ".dockerignore"

README = ROOT / "README.md"

APP_SERVICES = ("migrate", "api", "worker")
INFRA_SERVICES = ("postgresql", "temporal", "temporal-ui")
EXPECTED_SERVICES = {*INFRA_SERVICES, *APP_SERVICES}
SETTINGS_NAMES = {name.upper() for name in Settings.model_fields}

_INTERPOLATION = re.compile(r"\$\{(?P<name>[A-Za-z_][A-Za-z0-9_]*)(?:(?::?-)(?P<default>[^}]*))?\}")
# `${NAME:?message}`: compose refuses to start, printing the message, while NAME is unset or empty.
_REQUIRED = re.compile(r"\$\{(?P<name>[A-Za-z_][A-Za-z0-9_]*):\?(?P<message>[^}]+)\}")
_ASSIGNMENT = re.compile(r"^(?P<commented>#\s*)?(?P<key>[A-Z][A-Z0-9_]*)=(?P<value>.*)$")


def _compose() -> dict[str, Any]:
    """Return docker-compose.yml parsed with the safe loader."""
    data = yaml.safe_load(COMPOSE_FILE.read_text(encoding="utf-8"))
    assert isinstance(data, dict), "docker-compose.yml must be a mapping"
    return data


def _service(name: str) -> dict[str, Any]:
    """Return one service definition, failing clearly when it is missing."""
    services = _compose().get("services") or {}
    assert name in services, f"service {name!r} missing from docker-compose.yml"
    service = services[name]
    assert isinstance(service, dict), f"service {name!r} must be a mapping"
    return service


def _environment(service: dict[str, Any]) -> dict[str, str]:
    """Return a service's environment as a dict, whichever of the two compose syntaxes it uses."""
    env = service.get("environment") or {}
    if isinstance(env, list):
        pairs = (item.split("=", 1) if "=" in item else (item, "") for item in env)
        return {str(key): str(value) for key, value in pairs}
    return {str(key): "" if value is None else str(value) for key, value in env.items()}


def _resolve(value: str) -> str:
    """Apply compose `${NAME:-default}` interpolation as if no variable were set."""
    return _INTERPOLATION.sub(lambda match: match.group("default") or "", value)


def _depends_on(service: dict[str, Any]) -> dict[str, str]:
    """Return `{dependency: condition}`; the short list syntax means `service_started`."""
    deps = service.get("depends_on") or {}
    if isinstance(deps, list):
        return dict.fromkeys(deps, "service_started")
    return {name: (spec or {}).get("condition", "service_started") for name, spec in deps.items()}


def _published_ports(service: dict[str, Any]) -> set[tuple[int, int]]:
    """Return the `(host port, container port)` pairs a service publishes."""
    pairs: set[tuple[int, int]] = set()
    for port in service.get("ports") or []:
        if isinstance(port, dict):
            if "published" in port:
                pairs.add((int(port["published"]), int(port["target"])))
            continue
        parts = str(port).split("/", 1)[0].split(":")
        if len(parts) >= 2:
            pairs.add((int(parts[-2]), int(parts[-1])))
    return pairs


def _env_example() -> list[tuple[str, str, bool]]:
    """Return `(key, value, active)` per assignment in .env.example; `# KEY=` is documented but unset."""
    entries = []
    lines = ENV_EXAMPLE.read_text(encoding="utf-8").splitlines()
    for index, line in enumerate(lines):
        match = _ASSIGNMENT.match(line.strip())
        if not match:
            continue
        above = lines[index - 1].strip() if index else ""
        assert above.startswith("#") and not _ASSIGNMENT.match(above), (
            f".env.example: {match['key']} needs a one-line comment above it"
        )
        entries.append((match["key"], match["value"], match["commented"] is None))
    return entries


def test_expected_services_exist() -> None:
    """The production stack has PostgreSQL, Temporal, its UI, migrate, the API and workers."""
    services = set(_compose().get("services") or {})
    assert EXPECTED_SERVICES <= services, f"missing services: {sorted(EXPECTED_SERVICES - services)}"


def test_ui_and_api_ports_are_published() -> None:
    """The Temporal UI is reachable on host port 8080 and the API on host port 8000."""
    assert (8080, 8080) in _published_ports(_service("temporal-ui"))
    assert (8000, 8000) in _published_ports(_service("api"))


def test_app_environment_names_are_settings_fields() -> None:
    """Every variable set on migrate/api/worker is read by Settings, so none is silently ignored."""
    for name in APP_SERVICES:
        env = _environment(_service(name))
        assert env, f"{name} sets no environment"
        unknown = set(env) - SETTINGS_NAMES
        assert not unknown, f"{name} sets variables Settings does not read: {sorted(unknown)}"


def test_app_services_use_postgresql_and_the_compose_temporal() -> None:
    """App containers reach the compose PostgreSQL via asyncpg and the compose Temporal frontend."""
    for name in APP_SERVICES:
        env = _environment(_service(name))
        url = urlsplit(_resolve(env.get("DATABASE_URL", "")))
        assert url.scheme == "postgresql+asyncpg", f"{name} DATABASE_URL scheme is {url.scheme!r}"
        assert url.hostname == "postgresql", f"{name} DATABASE_URL host is {url.hostname!r}"
        assert url.path.strip("/"), f"{name} DATABASE_URL names no database"
        host, _, port = env.get("TEMPORAL_ADDRESS", "").rpartition(":")
        assert (host, port) == ("temporal", "7233"), f"{name} TEMPORAL_ADDRESS is not temporal:7233"
        for key in ("TEMPORAL_NAMESPACE", "TEMPORAL_TASK_QUEUE", "WORKFLOWS_DIR"):
            assert _resolve(env.get(key, "")), f"{name} does not set {key}"
    assert _environment(_service("api")).get("API_HOST") == "0.0.0.0"


def test_nothing_is_required_at_interpolation() -> None:
    """No `${VAR:?...}` anywhere: compose interpolates the whole file first, so one would stop an infra-only `up`."""
    text = COMPOSE_FILE.read_text(encoding="utf-8")
    assert not _REQUIRED.search(text), _REQUIRED.search(text)
    assert not re.search(r"\$\{[A-Za-z_][A-Za-z0-9_]*\?", text), "`${VAR?...}` is required as well"


def test_the_default_shape_is_the_infrastructure_only() -> None:
    """`docker compose up -d` starts PostgreSQL, Temporal and its UI; the app services need `--profile app`."""
    services = _compose()["services"]
    default = {name for name, service in services.items() if not service.get("profiles")}
    assert default == set(INFRA_SERVICES)
    for name in APP_SERVICES:
        assert _service(name).get("profiles") == ["app"], f"{name} must be in the app profile only"
    for name in INFRA_SERVICES:  # a default service waiting on a profiled one would pull it in (or never start)
        assert set(_depends_on(_service(name))) <= set(INFRA_SERVICES), name


def test_the_infrastructure_publishes_what_a_host_worker_and_api_need() -> None:
    """The app database on 5432, the Temporal frontend on 7233 and the UI on 8080, all on the host."""
    assert (5432, 5432) in _published_ports(_service("postgresql"))
    assert (7233, 7233) in _published_ports(_service("temporal"))
    assert (8080, 8080) in _published_ports(_service("temporal-ui"))


def test_the_documented_host_env_reaches_the_published_infrastructure() -> None:
    """README's `.env` lines for the host shape use the compose database's credentials and published ports."""
    readme = README.read_text(encoding="utf-8")
    urls = re.findall(r"^DATABASE_URL=(postgresql\+asyncpg://\S+)$", readme, re.MULTILINE)
    assert urls, "README gives no DATABASE_URL=postgresql+asyncpg://... line for the host shape"
    assert "TEMPORAL_ADDRESS=localhost:7233" in readme
    container = urlsplit(_resolve(_environment(_service("api"))["DATABASE_URL"]))
    for url in map(urlsplit, urls):
        assert (url.hostname, url.port) == ("localhost", 5432), url.geturl()
        assert (url.username, url.password, url.path) == (container.username, container.password, container.path)
    assert Settings.model_fields["temporal_address"].default == "localhost:7233"  # the .env.example value works


def test_the_api_without_tokens_stops_with_a_clear_message_in_its_log() -> None:
    """Bound to 0.0.0.0, the API exits at start without tokens (see the next test); compose passes them through."""
    env = _environment(_service("api"))
    assert env.get("API_HOST") == "0.0.0.0"
    assert env.get("API_TOKENS") == "${API_TOKENS:-}"
    assert _resolve(env.get("API_DOCS_ENABLED", "")) == "true"


def test_the_api_and_workers_share_one_signing_key_and_deny_our_own_services() -> None:
    """Decisions the API signs are checked by the workers: the same APPROVAL_SIGNING_KEY, else one shared key file."""
    volumes = _compose().get("volumes") or {}
    for name in ("api", "worker"):
        env = _environment(_service(name))
        assert env.get("APPROVAL_SIGNING_KEY") == "${APPROVAL_SIGNING_KEY:-}", name
        assert env.get("APPROVAL_SIGNING_KEY_FILE") == "/app/data/approval-signing.key", name
        mounts = [str(volume) for volume in _service(name).get("volumes") or []]
        assert "app-data:/app/data" in mounts, f"{name} must mount the shared app-data volume at /app/data"
        denied = {entry.split(":")[0] for entry in env["EGRESS_DENY"].split(",")}
        assert {"temporal", "temporal-ui", "api", "postgresql"} <= denied, name
    assert "app-data" in volumes, "app-data must be a named volume (shared by the api and worker containers)"
    assert _environment(_service("temporal-ui"))["TEMPORAL_DISABLE_WRITE_ACTIONS"] == "true"


def test_the_api_refuses_every_interface_without_tokens(tmp_path: Path) -> None:
    """Why the compose API needs API_TOKENS: without them it will not listen beyond loopback."""
    env = {**os.environ, "API_HOST": "0.0.0.0", "API_TOKENS": "", "PYTHONPATH": str(ROOT)}
    result = subprocess.run(
        [sys.executable, "-m", "workflow_engine", "api"], env=env, cwd=tmp_path, capture_output=True, text=True,
        timeout=60,
    )  # fmt: skip
    assert result.returncode != 0
    assert "refusing to serve on 0.0.0.0 without authentication" in result.stdout + result.stderr


def test_depends_on_conditions() -> None:
    """Start order: database, then Temporal and migrations, then the API and the workers."""
    assert _depends_on(_service("temporal")) == {"postgresql": "service_healthy"}
    assert _depends_on(_service("temporal-ui")).get("temporal") in {"service_healthy", "service_started"}
    assert _depends_on(_service("migrate")) == {"postgresql": "service_healthy"}
    for name in ("api", "worker"):
        deps = _depends_on(_service(name))
        assert deps.get("migrate") == "service_completed_successfully", f"{name} must wait for migrate"
        assert deps.get("temporal") == "service_healthy", f"{name} must wait for a healthy temporal"


def test_services_waited_on_as_healthy_have_healthchecks() -> None:
    """A `service_healthy` dependency on a service without a healthcheck would never start."""
    services = _compose()["services"]
    for name, service in services.items():
        for dependency, condition in _depends_on(service).items():
            assert dependency in services, f"{name} depends on unknown service {dependency!r}"
            if condition == "service_healthy":
                check = services[dependency].get("healthcheck") or {}
                assert check.get("test") and not check.get("disable"), (
                    f"{name} waits for {dependency} to be healthy but it has no healthcheck"
                )
    api_check = " ".join(_service("api")["healthcheck"]["test"])
    assert "http://localhost:8000/health" in api_check and "urllib" in api_check


def test_app_services_run_the_expected_commands() -> None:
    """migrate, api and worker are built from this repo and each runs its own entry point once."""
    for name in APP_SERVICES:
        service = _service(name)
        assert service.get("build"), f"{name} must be built from the Dockerfile"
        command = service.get("command")
        words = command.split() if isinstance(command, str) else list(command or [])
        assert words == ["python", "-m", "workflow_engine", name], f"{name} runs {words}"
    assert _service("migrate").get("restart") == "no"
    assert _service("worker").get("deploy", {}).get("replicas") == 2


def test_temporal_is_backed_by_the_compose_postgresql() -> None:
    """The Temporal server persists in the compose PostgreSQL with the credentials it was given."""
    temporal = _environment(_service("temporal"))
    postgres = _environment(_service("postgresql"))
    assert temporal.get("DB") == "postgres12"
    assert temporal.get("POSTGRES_SEEDS") == "postgresql"
    assert temporal.get("POSTGRES_USER") == postgres.get("POSTGRES_USER")
    assert _resolve(temporal.get("POSTGRES_PWD", "")) == _resolve(postgres.get("POSTGRES_PASSWORD", ""))
    assert (7233, 7233) in _published_ports(_service("temporal"))
    assert _environment(_service("temporal-ui")).get("TEMPORAL_ADDRESS") == "temporal:7233"


def test_app_database_is_created_by_the_postgres_init_script() -> None:
    """The database and role in DATABASE_URL are created by a script the postgresql service mounts."""
    volumes = [str(volume) for volume in _service("postgresql").get("volumes") or []]
    assert any(volume.endswith(":/var/lib/postgresql/data") for volume in volumes), "no data volume"
    init_mounts = [v.split(":")[0] for v in volumes if ":/docker-entrypoint-initdb.d" in v]
    assert init_mounts, "postgresql mounts no init scripts"
    scripts = sorted((ROOT / init_mounts[0]).glob("*.sh")) + sorted((ROOT / init_mounts[0]).glob("*.sql"))
    assert scripts, f"no init script in {init_mounts[0]}"
    text = "\n".join(script.read_text(encoding="utf-8") for script in scripts)
    assert "CREATE DATABASE" in text.upper() and "CREATE ROLE" in text.upper()
    url = urlsplit(_resolve(_environment(_service("api"))["DATABASE_URL"]))
    for name in (url.username, url.path.strip("/")):
        assert name and name in text, f"init scripts never mention {name!r}"
    assert url.password == _resolve(_environment(_service("postgresql")).get("APP_DB_PASSWORD", ""))


def test_third_party_images_are_pinned() -> None:
    """Images not built here carry a concrete tag, so an upgrade is always a visible change."""
    for name, service in _compose()["services"].items():
        if service.get("build"):
            continue
        image = str(service.get("image", ""))
        _, _, tag = image.rpartition("/")[2].partition(":")
        assert tag and tag != "latest", f"{name} image {image!r} is not pinned"
        if image.startswith("temporalio/"):
            assert re.fullmatch(r"\d+\.\d+\.\d+", tag), f"{name} image {image!r} needs a full version"


def test_env_example_lists_exactly_the_settings_fields() -> None:
    """Every .env.example key is a Settings field and every Settings field is documented there."""
    keys = [key for key, _, _ in _env_example()]
    assert len(keys) == len(set(keys)), "duplicate keys in .env.example"
    assert set(keys) - SETTINGS_NAMES == set(), "keys Settings does not read"
    assert SETTINGS_NAMES - set(keys) == set(), "Settings fields missing from .env.example"
    order = [name.upper() for name in Settings.model_fields]
    assert keys == order, "keep .env.example in the order of settings.py"


def test_env_example_values_are_the_settings_defaults() -> None:
    """Copying .env.example to .env changes nothing: each value parses to the field's default."""
    fields = {name.upper(): info for name, info in Settings.model_fields.items()}
    for key, value, active in _env_example():
        if key not in fields:
            continue
        default = fields[key].get_default(call_default_factory=True)
        if not active:
            assert default is None, f"{key} is commented out but its default is {default!r}"
            continue
        annotation = fields[key].annotation
        assert annotation is not None, f"{key} has no type annotation"
        parsed = TypeAdapter(annotation).validate_python(value)
        assert parsed == default, f"{key}={value!r} in .env.example but the default is {default!r}"


def test_a_copy_of_env_example_loads_as_the_defaults(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """`cp .env.example .env` works: that file loads without error and changes no setting."""
    for name in SETTINGS_NAMES:  # the file, not this process's environment, must decide
        monkeypatch.delenv(name, raising=False)
    copy = tmp_path / ".env"
    copy.write_text(ENV_EXAMPLE.read_text(encoding="utf-8"), encoding="utf-8")
    loaded = Settings(_env_file=copy)
    assert loaded == Settings(_env_file=None)
    copy.write_text("WORKER_MAX_CACHED_WORKFLOWS=7\n", encoding="utf-8")  # the file is really read
    assert Settings(_env_file=copy).worker_max_cached_workflows == 7


def test_dockerfile_builds_a_non_root_image_with_the_runtime_files() -> None:
    """The image is python:3.11-slim, runs as a non-root user and starts the API by default."""
    instructions = [
        line.strip().split(None, 1)
        for line in DOCKERFILE.read_text(encoding="utf-8").splitlines()
        if line.strip() and not line.lstrip().startswith("#") and not line.startswith((" ", "\t"))
    ]
    by_name: dict[str, list[str]] = {}
    for words in instructions:
        by_name.setdefault(words[0].upper(), []).append(words[1] if len(words) > 1 else "")
    assert by_name["FROM"][0].split()[0] == "python:3.11-slim"
    assert by_name.get("USER"), "the image must switch to a non-root user"
    assert by_name["USER"][-1].split(":")[0] not in {"root", "0"}
    copied = " ".join(by_name.get("COPY", []))
    for path in ("requirements.txt", "workflow_engine/", "migrations/", "alembic.ini", "workflows/"):
        assert path in copied, f"Dockerfile does not copy {path}"
    assert "-r requirements.txt" in " ".join(by_name.get("RUN", []))
    assert json.loads(by_name["CMD"][-1]) == ["python", "-m", "workflow_engine", "api"]


def test_dockerignore_keeps_local_state_out_and_runtime_files_in() -> None:
    """The build context excludes the venv, data, git and caches but none of the copied files."""
    patterns = {
        line.strip().rstrip("/")
        for line in DOCKERIGNORE.read_text(encoding="utf-8").splitlines()
        if line.strip() and not line.startswith("#")
    }
    for required in (".venv", "data", ".git", "**/__pycache__", ".pytest_cache", ".mypy_cache", ".env"):
        assert required in patterns, f".dockerignore does not exclude {required}"
    for kept in ("requirements.txt", "workflow_engine", "migrations", "alembic.ini", "workflows"):
        assert kept not in patterns, f".dockerignore excludes {kept}, which the Dockerfile copies"
