"""One good and one bad fixture per DSL construct: good ones parse, bad ones fail exactly as annotated.

Each bad fixture starts with `# error: <path>: <message fragment> @ <line>`.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from workflow_engine.dsl import DslError, WorkflowDefinition, parse_definition

FIXTURES = Path(__file__).parent / "fixtures"
_EXPECTED = re.compile(r"^# error: (?P<path>[^:]+): (?P<message>.+) @ (?P<line>\d+)$")
ACTIVITY_TYPES = ("http_request", "log", "python", "shell")


def _names(kind: str) -> list[Path]:
    return sorted((FIXTURES / kind).glob("*.yaml"))


def test_every_construct_has_a_good_and_a_bad_fixture() -> None:
    assert [p.name for p in _names("good")] == [p.name for p in _names("bad")]
    assert len(_names("good")) >= 14


@pytest.mark.parametrize("path", _names("good"), ids=lambda p: p.stem)
def test_good_fixture_parses(path: Path) -> None:
    parse_definition(path.read_text(), file=path.name, activity_types=ACTIVITY_TYPES)


@pytest.mark.parametrize("path", _names("bad"), ids=lambda p: p.stem)
def test_bad_fixture_fails_where_annotated(path: Path) -> None:
    text = path.read_text()
    expected = _EXPECTED.match(text.splitlines()[0])
    assert expected, f"{path.name} needs a '# error: path: message @ line' first line"
    with pytest.raises(DslError) as caught:
        parse_definition(text, file=path.name, activity_types=ACTIVITY_TYPES)
    matching = [
        issue
        for issue in caught.value.issues
        if issue.path == expected["path"] and expected["message"] in issue.message
    ]
    assert matching, [str(issue) for issue in caught.value.issues]
    assert matching[0].line == int(expected["line"]), str(matching[0])
    assert matching[0].file == path.name


@pytest.mark.parametrize("path", _names("good"), ids=lambda p: p.stem)
def test_stored_form_validates_again_to_the_same_model(path: Path) -> None:
    """The registry stores `model_dump(mode="json")` and runs validate it again: it must round-trip."""
    definition = parse_definition(path.read_text(), file=path.name, activity_types=ACTIVITY_TYPES)
    assert WorkflowDefinition.model_validate(definition.model_dump(mode="json")) == definition


def test_an_approval_without_timeout_round_trips() -> None:
    definition = parse_definition("name: x\ntasks:\n  - id: ask\n    type: approval\n")
    assert WorkflowDefinition.model_validate(definition.model_dump(mode="json")) == definition
