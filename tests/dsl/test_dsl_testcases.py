"""Workflow test files: the model of a case, and every refusal with its file, line and path."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from workflow_engine.dsl import DslError, parse_definition
from workflow_engine.dsl.prepared import content_hash
from workflow_engine.dsl.testcases import Approval, Mock, TaskExpect, check_cases, parse_test_file

WORKFLOWS_DIR = Path(__file__).resolve().parents[2] / "workflows"
ORDERS = parse_definition((WORKFLOWS_DIR / "order_processing_workflow.yaml").read_text(), file="orders.yaml")
PARAMS = """{order_id: ORD-1, customer_id: C-1, order_amount: 10, items: [{product_id: P, quantity: 1}],
             payment_method: {type: card}, customer_email: a@b.example, customer_phone: "+1234567890"}"""


def _file(body: str) -> str:
    return "workflow: order_processing_workflow\ncases:\n" + textwrap.indent(textwrap.dedent(body), "  ")


def _issues(text: str) -> list[str]:
    with pytest.raises(DslError) as caught:
        tests = parse_test_file(text, file="t.yaml")
        issues = check_cases(tests, ORDERS)
        if issues:
            raise DslError(issues)
    return [str(issue) for issue in caught.value.issues]


def test_a_case_reads_every_mock_approval_and_expectation_form() -> None:
    tests = parse_test_file(
        _file(f"""\
        - name: big order
          params: {PARAMS}
          mocks:
            fraud_check: {{output: {{risk: low}}}}
            charge_payment: {{error: timeout, times: 2, output: {{transaction_id: T}}}}
            create_invoice: {{error: "no invoices today", error_type: InvoiceDown}}
          approvals:
            manager_approval: [{{approver: alice}}, {{decision: reject, approver: bob, roles: [manager]}}]
          expect:
            status: failed
            tasks: {{manager_approval: rejected, charge_payment: {{status: completed, output: {{transaction_id: T}}}}}}
            output: null
            error: rejected
        """),
        file="t.yaml",
    )
    assert tests.workflow == "order_processing_workflow" and tests.prefix == "cases"
    case = tests.cases[0]
    assert case.mocks["charge_payment"] == Mock(output={"transaction_id": "T"}, error="timeout", times=2)
    assert case.mocks["create_invoice"].error_type == "InvoiceDown"
    assert case.decisions("manager_approval") == [
        Approval(approver="alice"),
        Approval(decision="reject", approver="bob", roles=["manager"]),
    ]
    assert case.expect.tasks["charge_payment"] == TaskExpect(status="completed", output={"transaction_id": "T"})
    assert case.expect.given("output") and case.expect.output is None  # `output: null` is checked
    assert not case.expect.tasks["charge_payment"].given("error")
    assert check_cases(tests, ORDERS) == []


def test_a_mock_fails_its_first_times_attempts_then_answers() -> None:
    flaky = Mock(error="boom", times=2, output={"ok": True})
    assert [flaky.answer(attempt) for attempt in (1, 2, 3)] == [(None, "boom"), (None, "boom"), ({"ok": True}, None)]
    assert Mock(error="down").answer(9) == (None, "down")
    assert Mock(output=1).answer(1) == (1, None)


def test_a_timeout_entry_sends_no_decision() -> None:
    tests = parse_test_file(
        _file(f"- name: nobody\n  params: {PARAMS}\n  approvals: {{manager_approval: {{timeout: true}}}}\n")
    )
    assert tests.cases[0].decisions("manager_approval") == []


def test_invalid_fields_are_refused_with_file_line_and_path() -> None:
    issues = _issues(
        _file("""\
        - name: bad
          mocks: {charge_payment: {times: 2}}
          expect: {status: done, tasks: {charge_payment: finished}, surprise: 1}
        """)
    )
    assert issues[0] == (
        "cases[0].mocks.charge_payment: `times` needs an `error` (the attempts that fail before `output` is answered)"
        " (t.yaml:4:13)"
    )
    assert any(
        i.startswith("cases[0].expect.status: Input should be 'completed'") and "(t.yaml:5:" in i for i in issues
    )
    assert "cases[0].expect.surprise: unknown field (t.yaml:5:63)" in issues
    assert any(i.startswith("cases[0].expect.tasks.charge_payment") for i in issues)


def test_a_test_file_needs_a_workflow_and_cases() -> None:
    assert _issues("workflow: x\ncases: []\n") == [
        "cases: List should have at least 1 item after validation, not 0 (t.yaml:2:1)"
    ]
    assert _issues("name: x\n") == ["a test file is a mapping with `workflow` and `cases` (t.yaml:1:1)"]


def test_references_to_the_workflow_are_checked_with_their_lines() -> None:
    issues = _issues(
        _file(f"""\
        - name: one
          params: {{order_id: 7, colour: red}}
          mocks: {{nope: {{output: 1}}, manager_approval: {{output: 1}}, prepare_notification: {{output: 1}}}}
          approvals: {{fraud_check: {{decision: approve}}}}
          expect: {{tasks: {{ghost: completed, alert: completed}}}}
        - name: one
          params: {PARAMS}
        """)
    )
    assert issues == [
        *(
            f"cases[0].params: {name}: required parameter is missing (t.yaml:4:5)"
            for name in ("customer_id", "order_amount", "items", "payment_method", "customer_email", "customer_phone")
        ),
        "cases[0].params.order_id: expected string, got integer (t.yaml:4:14)",
        "cases[0].params.colour: unknown parameter (t.yaml:4:27)",
        "cases[0].mocks.nope: cannot mock 'nope': it is not a task of the workflow (t.yaml:5:13)",
        "cases[0].mocks.manager_approval: cannot mock 'manager_approval': it is not an activity task (type: approval)"
        " (t.yaml:5:32)",
        "cases[0].mocks.prepare_notification: cannot mock 'prepare_notification': it is not an activity task (type:"
        " set) (t.yaml:5:63)",
        "cases[0].approvals.fraud_check: 'fraud_check' is not an approval task (t.yaml:6:17)",
        "cases[0].expect.tasks.ghost: 'ghost' is not a task (t.yaml:7:22)",
        "cases[1].name: another case (#1) has this name (t.yaml:8:5)",
    ]


def test_a_definition_carries_its_own_tests_without_changing_its_revision() -> None:
    source = (WORKFLOWS_DIR / "hello.yaml").read_text()
    with_tests = source + "tests:\n  - name: greets\n    expect: {output: {count: 2}}\n"
    definition = parse_definition(with_tests, file="hello.yaml")
    assert content_hash(definition) == content_hash(parse_definition(source, file="hello.yaml"))
    assert "tests" not in definition.model_dump(mode="json")
    tests = parse_test_file(with_tests, file="hello.yaml")
    assert tests.workflow is None and tests.prefix == "tests" and tests.cases[0].name == "greets"
    assert check_cases(tests, definition) == []
    bad = with_tests.replace("{count: 2}}", "{count: 2}, extra: 1}")
    with pytest.raises(DslError) as caught:
        parse_test_file(bad, file="hello.yaml")
    assert [str(i) for i in caught.value.issues] == [
        f"tests[0].expect.extra: unknown field (hello.yaml:{bad.count(chr(10))}:34)"
    ]
