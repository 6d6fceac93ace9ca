"""Results of test cases: one line per case on the terminal, and JUnit XML for CI."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from dataclasses import dataclass, field


@dataclass
class CaseResult:
    """How one case went: its differences from the expectation (none: passed) or why it could not run."""

    file: str
    name: str
    workflow: str
    seconds: float
    mismatches: list[str] = field(default_factory=list)
    error: str | None = None  # the case could not run to an end (no worker, a refused approval, too slow)

    @property
    def passed(self) -> bool:
        """Whether the run ended as expected."""
        return not self.mismatches and self.error is None

    @property
    def label(self) -> str:
        """`file::case name`, as `-k` matches it."""
        return f"{self.file}::{self.name}"

    def lines(self) -> list[str]:
        """Why the case failed, one line per problem."""
        return [*([self.error] if self.error else []), *self.mismatches]


def summary(results: list[CaseResult], seconds: float) -> str:
    """`3 passed, 1 failed in 1.2 s`."""
    failed = sum(not r.passed for r in results)
    return f"{len(results) - failed} passed, {failed} failed in {seconds:.1f} s"


def junit_xml(results: list[CaseResult]) -> bytes:
    """A JUnit XML report: a `testsuite` per test file, a `testcase` per case, `failure`/`error` with the diff."""
    root = ET.Element("testsuites", name="workflow_engine test")
    files = list(dict.fromkeys(r.file for r in results))
    for file in files:
        mine = [r for r in results if r.file == file]
        suite = ET.SubElement(
            root, "testsuite", name=file, tests=str(len(mine)),
            failures=str(sum(bool(r.mismatches) and r.error is None for r in mine)),
            errors=str(sum(r.error is not None for r in mine)), time=f"{sum(r.seconds for r in mine):.3f}",
        )  # fmt: skip
        for result in mine:
            case = ET.SubElement(
                suite, "testcase", classname=result.workflow, name=result.name, file=file, time=f"{result.seconds:.3f}"
            )
            if result.error is not None:
                ET.SubElement(case, "error", message=result.error).text = "\n".join(result.lines())
            elif result.mismatches:
                ET.SubElement(case, "failure", message=result.mismatches[0]).text = "\n".join(result.mismatches)
    root.set("tests", str(len(results)))
    root.set("failures", str(sum(not r.passed for r in results)))
    ET.indent(root)
    text: bytes = ET.tostring(root, encoding="utf-8", xml_declaration=True)
    return text
