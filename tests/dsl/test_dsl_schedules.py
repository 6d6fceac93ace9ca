"""`schedules:` entries: what parses, and every mistake as an issue located at its file and line."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from workflow_engine.dsl import DslError, WorkflowDefinition, parse_definition

HEAD = """\
name: nightly
params:
  region: {type: string, enum: [eu, us], required: true}
  count: {type: integer, default: 1}
schedules:
  - id: main
    params: {region: eu}
"""
TAIL = """\
tasks:
  - id: t
    activity_type: log
"""


def _text(entry: str) -> str:
    """A definition whose first schedule `main` (with valid params) continues with `entry`, from line 8 on."""
    return HEAD + entry + TAIL


def _issues(entry: str) -> list[tuple[str, int | None, str]]:
    with pytest.raises(DslError) as caught:
        parse_definition(_text(entry), file="nightly.yaml")
    assert all(issue.file == "nightly.yaml" for issue in caught.value.issues)
    return [(issue.path, issue.line, issue.message) for issue in caught.value.issues]


BAD = {
    "not a cron": ('    cron: "every day"\n', "schedules[0].cron", 8, "invalid cron expression 'every day'"),
    "6-field cron": ('    cron: "0 0 9 * * 1-5"\n', "schedules[0].cron", 8, "expected 5 fields"),
    "7-field cron": ('    cron: "0 0 9 * * 1-5 2027"\n', "schedules[0].cron", 8, "expected 5 fields"),
    "@every": ('    cron: "@every 5m"\n', "schedules[0].cron", 8, "invalid cron expression"),
    "L (Temporal refuses)": ('    cron: "0 9 L * *"\n', "schedules[0].cron", 8, "invalid cron expression"),
    "W (Temporal refuses)": ('    cron: "0 9 15W * *"\n', "schedules[0].cron", 8, "invalid cron expression"),
    "? (Temporal refuses)": ('    cron: "0 9 ? * 1"\n', "schedules[0].cron", 8, "invalid cron expression"),
    "weekday ?": ('    cron: "0 9 * * ?"\n', "schedules[0].cron", 8, "invalid cron expression"),
    "hour 24": ('    cron: "0 24 * * *"\n', "schedules[0].cron", 8, "invalid cron expression"),
    "time zone": ('    cron: "@daily"\n    timezone: Mars/Olympus\n', "schedules[0].timezone", 9,
                  "unknown time zone 'Mars/Olympus'; use an IANA name such as Europe/Paris"),
    "cron and every": ('    cron: "@daily"\n    every: 1h\n', "schedules[0]", 6, "exactly one of cron or every"),
    "neither": ("    timezone: UTC\n", "schedules[0]", 6, "exactly one of cron or every"),
    "offset = every": ("    every: 1h\n    offset: 1h\n", "schedules[0]", 6, "must be shorter than it"),
    "offset > every": ("    every: 1h\n    offset: 2h\n", "schedules[0]", 6, "must be shorter than it"),
    "offset without every": ('    cron: "@daily"\n    offset: 1m\n', "schedules[0]", 6, "offset needs every"),
    "every < 1s": ("    every: 500ms\n", "schedules[0]", 6, "every must be at least 1s"),
    "every 0": ("    every: 0s\n", "schedules[0].every", 8, "a duration must be greater than zero"),
    "naive start_at": ('    every: 1h\n    start_at: "2027-01-01T00:00:00"\n', "schedules[0].start_at", 9,
                       "a moment needs a time zone"),
    "naive YAML timestamp": ("    every: 1h\n    end_at: 2027-01-01 00:00:00\n", "schedules[0].end_at", 9,
                             "a moment needs a time zone"),
    "window backwards": ("    every: 1h\n    start_at: 2027-01-02T00:00:00Z\n    end_at: 2027-01-01T00:00:00Z\n",
                         "schedules[0]", 6, "end_at must be after start_at"),
    "short catch-up": ("    every: 1h\n    catchup_window: 5s\n", "schedules[0]", 6, "at least 10s"),
    "overlap": ("    every: 1h\n    overlap: queue\n", "schedules[0].overlap", 9, "Input should be"),
    "id pattern": ("    every: 1h\n  - id: Bad.Id\n    every: 2h\n    params: {region: eu}\n", "schedules[1].id", 9,
                   "should match pattern"),
    "unknown key": ("    every: 1h\n    colour: red\n", "schedules[0].colour", 9, "unknown field"),
}  # fmt: skip


@pytest.mark.parametrize(("entry", "path", "line", "message"), BAD.values(), ids=BAD.keys())
def test_a_bad_schedule_is_an_issue_at_its_line(entry: str, path: str, line: int, message: str) -> None:
    found = _issues(entry)
    assert [(p, n) for p, n, m in found if message in m] == [(path, line)], found


def test_duplicate_ids_are_located_at_the_second_one() -> None:
    explicit = "    every: 1h\n  - id: main\n    every: 2h\n    params: {region: us}\n"
    assert _issues(explicit) == [("schedules[1].id", 9, "duplicate schedule id 'main' (also schedules[0])")]
    # an entry without an id is keyed by its index: the third entry is "2", which the second one took
    by_index = (
        "    every: 1h\n  - id: '2'\n    every: 2h\n    params: {region: us}\n  - every: 3h\n    params: {region: us}\n"
    )
    assert _issues(by_index) == [("schedules[2]", 12, "duplicate schedule id '2' (also schedules[1])")]


def test_schedule_params_are_checked_against_the_params_with_every_problem_located() -> None:
    found = _issues('    every: 1h\n  - every: 2h\n    params: {region: mars, count: "x", ghost: 1}\n')
    assert found == [
        ("schedules[1].params.region", 10, "'mars' is not one of ['eu', 'us']"),
        ("schedules[1].params.count", 10, "expected integer, got string"),
        ("schedules[1].params.ghost", 10, "unknown parameter 'ghost'"),
    ]
    missing = "    every: 1h\n  - id: other\n    every: 2h\n"
    assert _issues(missing) == [("schedules[1].params", 9, "required parameter 'region' is missing")]


def test_good_schedules_parse_with_their_ids_and_defaults() -> None:
    text = _text(
        "    every: 15m\n    offset: 5m\n    jitter: 30s\n"
        "    start_at: 2027-01-01T00:00:00Z\n    end_at: '2027-06-01T00:00:00+02:00'\n"
        "  - cron: '@daily'\n    timezone: Europe/Paris\n    params: {region: us}\n    paused: true\n"
        "  - cron: '0 9 * * MON-FRI'\n    params: {region: us}\n    overlap: cancel_other\n    catchup_window: 1h\n"
        "  - cron: '0 9 * JUL wed#2'\n    params: {region: us}\n"
    )
    definition = parse_definition(text)
    keyed = definition.keyed_schedules()
    assert [key for key, _ in keyed] == ["main", "1", "2", "3"]
    main, daily, weekdays, _ = (entry for _, entry in keyed)
    assert (main.every, main.offset) == (timedelta(minutes=15), timedelta(minutes=5))
    assert (main.jitter, main.params) == (timedelta(seconds=30), {"region": "eu"})
    assert main.start_at == datetime(2027, 1, 1, tzinfo=UTC)
    assert main.end_at == datetime(2027, 5, 31, 22, tzinfo=UTC)
    assert (main.cron, main.timezone, main.overlap, main.paused) == (None, "UTC", "skip", False)
    assert main.catchup_window == timedelta(minutes=1)
    assert (daily.cron, daily.timezone, daily.paused, daily.every) == ("@daily", "Europe/Paris", True, None)
    assert (weekdays.overlap, weekdays.catchup_window) == ("cancel_other", timedelta(hours=1))
    stored = definition.model_dump(mode="json")  # what the registry stores, and what the API reads back
    assert WorkflowDefinition.model_validate(stored) == definition
    assert WorkflowDefinition.from_stored(stored).schedules == []  # a pinned run does not need them
