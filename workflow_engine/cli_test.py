"""`test [PATHS]` for the CLI: read the test files, run their cases on the time-skipping server, report them."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import typer
from rich.console import Console
from rich.markup import escape

from workflow_engine.dsl.testcases import Case
from workflow_engine.settings import Settings
from workflow_engine.testing import CaseResult, TestSuite, collect, junit_xml, run_suites
from workflow_engine.testing.report import summary
from workflow_engine.testing.runner import TestServerMissing


def run_tests(
    settings: Settings, paths: list[Path], *, activity_types: tuple[str, ...], junit: Path | None,
    keyword: str | None, case_timeout: float,
) -> int:  # fmt: skip
    """Run the cases under PATHS and return the exit code: 0 all passed, 1 one failed, 2 unusable test files."""
    console = Console(highlight=False, soft_wrap=True)
    missing = [path for path in paths if not path.exists()]
    if missing:
        for path in missing:
            console.print(f"[red]{escape(str(path))}: no such file or directory[/]")
        return 2
    suites, issues = collect(paths, settings, activity_types)
    if issues:
        for issue in issues:
            typer.echo(str(issue), err=True)
        typer.echo(f"{len(issues)} problem(s) in the test files; nothing was run", err=True)
        return 2

    def selected(suite: TestSuite, case: Case) -> bool:
        return keyword is None or keyword.lower() in f"{suite.tests.file}::{case.name}".lower()

    if not any(selected(suite, case) for suite in suites for case in suite.tests.cases):
        console.print(
            f"[yellow]no test cases found in {', '.join(map(str, paths))}"
            + (f" matching -k {keyword!r}" if keyword else "")
            + "[/]"
        )
        return 2

    def show(result: CaseResult) -> None:
        mark = "[green]PASS[/]" if result.passed else "[red]FAIL[/]"
        console.print(f"{mark} {escape(result.label)} [dim]({result.seconds:.2f} s)[/]")
        for line in result.lines():
            console.print(f"    {escape(line)}")

    began = time.monotonic()
    try:
        results = asyncio.run(run_suites(suites, settings, select=selected, on_result=show, case_timeout=case_timeout))
    except TestServerMissing as exc:
        console.print(f"[red]{escape(str(exc))}[/]")
        return 2
    console.print(
        summary(results, time.monotonic() - began), style="bold green" if all(r.passed for r in results) else "bold red"
    )
    if junit is not None:
        junit.parent.mkdir(parents=True, exist_ok=True)
        junit.write_bytes(junit_xml(results))
    return 0 if all(r.passed for r in results) else 1
