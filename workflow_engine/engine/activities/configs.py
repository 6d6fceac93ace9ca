"""The contracts of the built-in activities' configs (`http_request`, `shell`) as strict pydantic models.

Each model refuses unknown keys, coerces nothing, and reports one problem at a time as a sentence: the problem of
the first key in declaration order (unknown keys first), worded by the key's entry in `messages` unless the
validator raised its own sentence with `problem()`. The activities turn a `ConfigProblem` into a non-retryable
`ConfigError`.
"""

from __future__ import annotations

import os
import re
import shlex
from datetime import timedelta
from typing import Annotated, Any, ClassVar, Self

import httpx
from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PlainValidator,
    StringConstraints,
    TypeAdapter,
    ValidationError,
)
from pydantic_core import ErrorDetails, PydanticCustomError

from ...dsl.durations import Duration

HTTP_DEFAULT_TIMEOUT = 30.0
SHELL_DEFAULT_TIMEOUT = 300.0
DEFAULT_MAX_OUTPUT_BYTES = 1024 * 1024
BODY_KEYS = ("json", "body", "form")
_OWN_MESSAGE = "config_problem"
_METHOD = re.compile(r"^[A-Z]+$")
_TOKEN = re.compile(r"^[!#$%&'*+.^_`|~0-9A-Za-z-]+$")
_CLASS_PATTERN = re.compile(r"^([1-5])xx$", re.IGNORECASE)
_RANGE_PATTERN = re.compile(r"^(\d{3})\s*-\s*(\d{3})$")
_STATUS_ENTRIES = "config.expected_status entries must be status codes (200), classes ('2xx') or ranges ('200-299')"
_DURATION: TypeAdapter[timedelta] = TypeAdapter(Duration)


class ConfigProblem(ValueError):
    """A task config that breaks its activity's contract; the message says how."""


def problem(message: str) -> PydanticCustomError:
    """Return a validation error reported with exactly `message` instead of its key's message."""
    return PydanticCustomError(_OWN_MESSAGE, "{message}", {"message": message})


def seconds_message(key: str) -> str:
    """Return the message of a `Seconds` value that is not a positive duration."""
    return f"config.{key} must be a positive number of seconds or a duration such as 10s, 5m or PT30S"


def _seconds(value: Any) -> float:
    if isinstance(value, int | float) and not isinstance(value, bool) and value > 0:
        return float(value)
    if isinstance(value, str):
        try:
            return _DURATION.validate_python(value).total_seconds()
        except ValidationError:
            pass
    raise ValueError("not a positive duration")


def _text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str | int | float):
        return str(value)
    raise ValueError("not a scalar")


def _none_as_empty(value: Any) -> Any:
    return {} if value is None else value


Seconds = Annotated[float, PlainValidator(_seconds)]
"""A positive number of seconds, or a DSL duration string (`10s`, `5m`, `PT30S`), as seconds."""
Scalar = str | int | float | bool
ScalarText = Annotated[str, PlainValidator(_text)]
"""A scalar as the text sent on the wire (booleans as `true`/`false`)."""
ScalarParams = Annotated[dict[str, Scalar | list[Scalar]], BeforeValidator(_none_as_empty)]
"""Query or form parameters: names to scalars or lists of scalars; null means none."""


class ActivityConfig(BaseModel):
    """Base of a built-in activity's config: strict types, unknown keys refused, one message per key."""

    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)

    messages: ClassVar[dict[str, str]] = {}
    """The message of a key whose value its type refuses, unless the validator raised a `problem()`."""

    @classmethod
    def check(cls, config: dict[str, Any]) -> Self:
        """Return the validated config.

        Raises:
            ConfigProblem: The first problem, in the order the keys are declared (unknown keys first).
        """
        problems = [(cls._rank(key), message) for key, message in cls.conflicts(config)]
        try:
            spec = cls.model_validate(config)
        except ValidationError as exc:
            problems.extend(cls._problems(exc.errors()))
        else:
            if not problems:
                return spec
        raise ConfigProblem(min(problems, key=lambda ranked: ranked[0])[1])

    @classmethod
    def conflicts(cls, config: dict[str, Any]) -> list[tuple[str, str]]:
        """Return `(key, message)` for rules spanning keys; each is reported before the errors of its key."""
        return []

    @classmethod
    def config_keys(cls) -> list[str]:
        """Return the config keys in declaration order."""
        return [field.alias or name for name, field in cls.model_fields.items()]

    @classmethod
    def _rank(cls, key: str) -> int:
        return cls.config_keys().index(key)

    @classmethod
    def _problems(cls, errors: list[ErrorDetails]) -> list[tuple[int, str]]:
        unknown = [error["loc"][0] for error in errors if error["type"] == "extra_forbidden"]
        known = [error for error in errors if error["type"] != "extra_forbidden"]
        problems = [(cls._rank(str(error["loc"][0])), cls._message(error)) for error in known]
        if unknown:
            allowed = ", ".join(sorted(cls.config_keys()))
            problems.append((-1, f"unknown config keys {sorted(unknown, key=str)}; allowed: {allowed}"))
        return problems

    @classmethod
    def _message(cls, error: ErrorDetails) -> str:
        return error["msg"] if error["type"] == _OWN_MESSAGE else cls.messages[str(error["loc"][0])]


def _method(method: str) -> str:
    if not _METHOD.match(method.upper()):
        raise ValueError("not an HTTP method")
    return method.upper()


def _url(value: Any) -> httpx.URL:
    if not isinstance(value, str) or not value.strip():
        raise ValueError("not a URL string")
    try:
        url = httpx.URL(value.strip())
    except httpx.InvalidURL as exc:
        raise problem(f"config.url is not a valid URL: {exc}") from None
    if not url.is_absolute_url:
        raise problem("config.url must be an absolute http(s) URL")
    return url


def _header_lines(headers: dict[str, str]) -> dict[str, str]:
    for name, value in headers.items():
        if not _TOKEN.match(name) or not value.isascii() or "\r" in value or "\n" in value:
            raise problem(f"config.headers: {name!r} needs a token name and a single-line ASCII value")
    return headers


def _as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def _status_range(item: Any) -> tuple[int, int]:
    """Return `(low, high)` for a status code (`200`, `'200'`), a class (`'2xx'`) or a range (`'200-299'`)."""
    text = item.strip() if isinstance(item, str) else ""
    if text.isdecimal():
        item = int(text)
    if isinstance(item, int) and not isinstance(item, bool) and 100 <= item <= 599:
        return item, item
    if match := _CLASS_PATTERN.match(text):
        return int(match.group(1)) * 100, int(match.group(1)) * 100 + 99
    if match := _RANGE_PATTERN.match(text):
        return _bounded(item, int(match.group(1)), int(match.group(2)))
    raise problem(f"{_STATUS_ENTRIES}; got {item!r}")


def _bounded(item: str, low: int, high: int) -> tuple[int, int]:
    if not 100 <= low <= high <= 599:
        raise problem(f"{_STATUS_ENTRIES}; {item!r} is not a valid range")
    return low, high


StatusRange = Annotated[tuple[int, int], PlainValidator(_status_range)]


class HttpRequestSpec(ActivityConfig):
    """The `config` of an `http_request` task: one request, at most one of `json`, `body` and `form`."""

    messages: ClassVar[dict[str, str]] = {
        "method": "config.method must be an HTTP method such as GET or POST",
        "url": "config.url is required and must be a string",
        "query": "config.query must be a mapping of names to scalars or lists of scalars",
        "headers": "config.headers must be a mapping of names to scalars",
        "body": "config.body must be a string; use config.json for structured data",
        "form": "config.form must be a mapping of names to scalars or lists of scalars",
        "follow_redirects": "config.follow_redirects must be true or false",
        "timeout": seconds_message("timeout"),
        "expected_status": "config.expected_status must not be empty",
    }

    method: Annotated[str, AfterValidator(_method)] = "GET"
    url: Annotated[httpx.URL, PlainValidator(_url)]
    query: ScalarParams = Field(default_factory=dict)
    headers: Annotated[dict[str, ScalarText], BeforeValidator(_none_as_empty), AfterValidator(_header_lines)] = Field(
        default_factory=dict
    )
    json_body: Any = Field(None, alias="json")
    body: str = ""
    form: ScalarParams = Field(default_factory=dict)
    follow_redirects: bool = True
    timeout: Seconds = HTTP_DEFAULT_TIMEOUT
    expected_status: Annotated[list[StatusRange], BeforeValidator(_as_list), Field(min_length=1)] = Field(
        default_factory=lambda: [(200, 299)]
    )

    @classmethod
    def conflicts(cls, config: dict[str, Any]) -> list[tuple[str, str]]:
        """Refuse more than one request body."""
        bodies = [key for key in BODY_KEYS if key in config]
        if len(bodies) > 1:
            return [("json", f"config may set only one of json, body and form; got {', '.join(bodies)}")]
        return []

    def request_body(self) -> dict[str, Any]:
        """Return the body as keyword arguments of an httpx request (none when no body key is set)."""
        if "json_body" in self.model_fields_set:
            return {"json": self.json_body}
        if "body" in self.model_fields_set:
            return {"content": self.body.encode()}
        if "form" in self.model_fields_set:
            return {"data": self.form}
        return {}


def _split(command: Any) -> Any:
    if not isinstance(command, str):
        return command
    try:
        return shlex.split(command)
    except ValueError as exc:
        raise problem(f"config.command cannot be split into arguments: {exc}") from None


def _argument(value: Any) -> str:
    if isinstance(value, str | int | float) and not isinstance(value, bool):
        return str(value)
    raise ValueError("not an argument")


def _names_program(argv: list[str]) -> list[str]:
    if not argv or not argv[0]:
        raise problem("config.command must name a program")
    return argv


def _falsy_as_empty(value: Any) -> Any:
    return value or {}


def _existing_directory(cwd: Any) -> str | None:
    if cwd is not None and (not isinstance(cwd, str) or not os.path.isdir(cwd)):
        raise problem(f"config.cwd must be an existing directory; got {cwd!r}")
    return cwd


EnvName = Annotated[str, StringConstraints(pattern=r"^[^=]+$")]


class ShellSpec(ActivityConfig):
    """The `config` of a `shell` task: a program and its arguments, never run through a shell."""

    messages: ClassVar[dict[str, str]] = {
        "command": "config.command is required: a list of arguments or a string split like a shell would",
        "env": "config.env must be a mapping of variable names to strings or numbers",
        "max_output_bytes": "config.max_output_bytes must be a positive integer",
        "timeout": seconds_message("timeout"),
    }

    argv: Annotated[
        list[Annotated[str, PlainValidator(_argument)]], BeforeValidator(_split), AfterValidator(_names_program)
    ] = Field(alias="command")
    env: Annotated[dict[EnvName, ScalarText], BeforeValidator(_falsy_as_empty)] = Field(default_factory=dict)
    cwd: Annotated[str | None, PlainValidator(_existing_directory)] = None
    max_output_bytes: int = Field(DEFAULT_MAX_OUTPUT_BYTES, gt=0)
    timeout: Seconds = SHELL_DEFAULT_TIMEOUT
