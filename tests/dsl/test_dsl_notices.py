"""A schedule whose overlap lets runs pile up without bound gets a located warning; others get none."""

from __future__ import annotations

from workflow_engine.dsl import parse_definition
from workflow_engine.dsl.notices import definition_warnings

SCHEDULED = """\
# a comment line, so the position is not trivially line 1
name: nightly
params:
  day: {type: string, default: any}
schedules:
  - cron: "0 9 * * 1-5"
    params: {day: monday}
    overlap: buffer_all
tasks:
  - id: say
    activity_type: log
    config: {message: hi}
"""


def test_an_unbounded_overlap_gets_one_warning_at_its_key() -> None:
    definition = parse_definition(SCHEDULED, file="nightly.yaml")
    notices = definition_warnings(definition, SCHEDULED, file="nightly.yaml")
    assert [(n.path, n.file, n.line, n.column) for n in notices] == [("schedules[0].overlap", "nightly.yaml", 8, 5)]
    assert notices[0].message.startswith("overlap: buffer_all starts every fire even while earlier runs still go")
    assert "(nightly.yaml:8:5)" in str(notices[0])
    bounded = SCHEDULED.replace("overlap: buffer_all", "overlap: skip")
    assert definition_warnings(parse_definition(bounded), bounded) == []


def test_a_definition_without_schedules_has_no_warnings() -> None:
    text = SCHEDULED.replace(
        'schedules:\n  - cron: "0 9 * * 1-5"\n    params: {day: monday}\n    overlap: buffer_all\n', ""
    )
    assert "schedules" not in text
    assert definition_warnings(parse_definition(text), text) == []
    empty = text.replace("tasks:", "schedules: []\ntasks:")
    assert definition_warnings(parse_definition(empty), empty) == []  # nothing declared, nothing to warn about
