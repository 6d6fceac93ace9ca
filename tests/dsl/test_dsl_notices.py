"""A valid definition with `schedules:` gets a located warning that schedules are not active yet."""

from __future__ import annotations

from workflow_engine.dsl import parse_definition
from workflow_engine.dsl.notices import SCHEDULES_INACTIVE, definition_warnings

SCHEDULED = """\
# a comment line, so the position is not trivially line 1
name: nightly
params:
  day: {type: string, default: any}
schedules:
  - cron: "0 9 * * 1-5"
    params: {day: monday}
tasks:
  - id: say
    activity_type: log
    config: {message: hi}
"""


def test_schedules_get_one_warning_at_their_key() -> None:
    definition = parse_definition(SCHEDULED, file="nightly.yaml")
    notices = definition_warnings(definition, SCHEDULED, file="nightly.yaml")
    assert [(n.path, n.file, n.line, n.column) for n in notices] == [("schedules", "nightly.yaml", 5, 1)]
    assert notices[0].message == SCHEDULES_INACTIVE
    assert notices[0].message.startswith("schedules are not active yet")
    assert "no Temporal Schedule is created" in str(notices[0]) and "(nightly.yaml:5:1)" in str(notices[0])


def test_a_definition_without_schedules_has_no_warnings() -> None:
    text = SCHEDULED.replace('schedules:\n  - cron: "0 9 * * 1-5"\n    params: {day: monday}\n', "")
    assert "schedules" not in text
    assert definition_warnings(parse_definition(text), text) == []
    empty = text.replace("tasks:", "schedules: []\ntasks:")
    assert definition_warnings(parse_definition(empty), empty) == []  # nothing declared, nothing to warn about
