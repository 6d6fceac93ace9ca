"""Which test files PATHS name, and each one read and checked against the definition it tests."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from workflow_engine.cli_plan import sibling_children
from workflow_engine.dsl import DslError, Issue, WorkflowDefinition, parse_definition
from workflow_engine.dsl.parser import load_yaml
from workflow_engine.dsl.testcases import TestFile, check_cases, is_test_document, parse_test_file
from workflow_engine.engine.activities.modules import allowed_modules
from workflow_engine.engine.types import ChildDefinition
from workflow_engine.settings import Settings

_SUFFIXES = ("*.yaml", "*.yml")


@dataclass
class TestSuite:
    """The cases of one test file, with the definition they run and the directory of its modules."""

    __test__ = False  # not a pytest class
    tests: TestFile
    definition: WorkflowDefinition
    workflows_dir: Path
    children: dict[str, ChildDefinition] = field(default_factory=dict)


def find_test_files(paths: Iterable[Path]) -> list[Path]:
    """The test files PATHS name: files as given; in a directory, `tests/*.yaml` and the files with `tests:`."""
    found: list[Path] = []
    for path in paths:
        if not path.is_dir():
            found.append(path)
            continue
        candidates = sorted({p for pattern in _SUFFIXES for p in (*path.glob(pattern), *path.glob(f"tests/{pattern}"))})
        found.extend(p for p in candidates if _is_test_file(p))
    return list(dict.fromkeys(found))


def _is_test_file(path: Path) -> bool:
    try:
        data, _ = load_yaml(path.read_text(encoding="utf-8"), file=str(path))
    except (OSError, UnicodeDecodeError, DslError):
        return path.parent.name == "tests"  # reported when read again: a broken file there is a broken test file
    return is_test_document(data)


def _definition_file(tests: TestFile, folder: Path, settings: Settings) -> Path | None:
    """The YAML file of the tested workflow: a path (relative to the test file) or a name in a nearby directory."""
    assert tests.workflow is not None
    if tests.workflow.endswith((".yaml", ".yml")):
        return folder / tests.workflow
    for directory in dict.fromkeys((folder, folder.parent, settings.workflows_dir)):
        for candidate in sorted(p for pattern in _SUFFIXES for p in directory.glob(pattern)):
            try:
                data, _ = load_yaml(candidate.read_text(encoding="utf-8"), file=str(candidate))
            except (OSError, UnicodeDecodeError, DslError):
                continue
            if isinstance(data, dict) and data.get("name") == tests.workflow and "tasks" in data:
                return candidate
    return None


def load_suite(path: Path, settings: Settings, activity_types: tuple[str, ...]) -> TestSuite:
    """Read one test file and the definition it tests; raise `DslError` with every issue (file:line).

    Raises:
        DslError: The file, its cases or the definition they test are invalid, or the workflow is not found.
    """
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise DslError([Issue("", f"cannot read the test file: {exc}", str(path))]) from None
    tests = parse_test_file(text, file=str(path))
    source = path if tests.workflow is None else _definition_file(tests, path.parent, settings)
    if source is None or not source.is_file():
        raise DslError([tests.issue(("workflow",), f"no workflow {tests.workflow!r} next to the test file")])
    workflows_dir = source.parent
    modules = allowed_modules(settings.model_copy(update={"workflows_dir": workflows_dir}))
    definition = parse_definition(
        source.read_text(encoding="utf-8"), file=str(source), activity_types=activity_types, python_modules=modules
    )
    issues = check_cases(tests, definition)
    if issues:
        raise DslError(issues)
    children = sibling_children(definition, workflows_dir, activity_types=activity_types, python_modules=modules)
    pinned = {
        name: ChildDefinition(definition=child.model_dump(mode="json"), revision=1) for name, child in children.items()
    }
    return TestSuite(tests=tests, definition=definition, workflows_dir=workflows_dir, children=pinned)


def collect(
    paths: Iterable[Path], settings: Settings, activity_types: tuple[str, ...]
) -> tuple[list[TestSuite], list[Issue]]:
    """Every test suite under PATHS, and the issues of those that cannot run (all files are read)."""
    suites: list[TestSuite] = []
    issues: list[Issue] = []
    for path in find_test_files(paths):
        try:
            suites.append(load_suite(path, settings, activity_types))
        except DslError as exc:
            issues.extend(exc.issues)
    return suites, issues
