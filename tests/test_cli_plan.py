"""`plan FILE`: a readable table or JSON, children found next to the file, and invalid params refused with exit 2."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from tests.conftest import REPO_ROOT
from workflow_engine.cli import app
from workflow_engine.settings import get_settings

EXAMPLES = REPO_ROOT / "workflows"


@pytest.fixture(autouse=True)
def fresh_settings(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Read settings (the examples' Python modules allowed) from this test's environment, and forget them after."""
    monkeypatch.setenv("WORKFLOWS_DIR", str(EXAMPLES))
    get_settings.cache_clear()
    yield
    get_settings.cache_clear()


def test_plan_prints_a_table_with_rendered_configs_skips_and_the_worst_case() -> None:
    order = EXAMPLES / "order_processing_workflow.yaml"
    result = CliRunner().invoke(app, [
        "plan", str(order), "-p", "order_id=ORD-7", "-p", "customer_id=C-1", "-p", "order_amount=80",
        "-p", 'items=[{"product_id": "P", "quantity": 1}]', "-p", 'payment_method={"type": "card"}',
        "-p", "customer_email=a@b.example", "-p", "customer_phone=+1234567890",
    ])  # fmt: skip
    assert result.exit_code == 0, result.output
    row = next(line for line in result.output.splitlines() if "manager_approval" in line and "│" in line)
    assert "skipped" in row
    assert "Your order ORD-7 is confirmed" in result.output
    assert "1 item(s), 1 wave(s) of ≤5" in result.output
    # the approval is skipped: validate 93 s, reserve 165 s, charge 242 s, invoice 165 s, notify 165 s
    assert "worst case: 13m 50s  (critical path: validate_order → reserve_stock → charge_payment" in result.output
    assert "notify_customer.config.kwargs.invoice_id: depends on create_invoice" in result.output


def test_plan_json_takes_params_as_one_object_and_finds_children_next_to_the_file(tmp_path: Path) -> None:
    (tmp_path / "parent.yaml").write_text(
        "name: parent\nparams: {who: {type: string, required: true}}\n"
        "tasks: [{id: call, type: workflow, config: {workflow: hello, params: {who: '${{ params.who }}'}}}]\n"
    )
    (tmp_path / "hello.yaml").write_text((EXAMPLES / "hello.yaml").read_text())
    result = CliRunner().invoke(app, ["plan", str(tmp_path / "parent.yaml"), "--params", '{"who": "Ada"}', "--json"])
    assert result.exit_code == 0, result.output
    plan = json.loads(result.output)
    assert plan["tasks"][0]["config"]["params"] == {"who": "Ada"}
    assert plan["worst_case"]["seconds"] == (3 * 300 + 3) + (3 * 10 + 3)  # hello's log task, then its python one


def test_invalid_params_exit_2_with_the_errors_a_start_gives() -> None:
    result = CliRunner().invoke(app, ["plan", str(EXAMPLES / "hello.yaml"), "-p", "times=0", "-p", "loud=true"])
    assert result.exit_code == 2
    assert "parameters.loud: unknown parameter" in result.output
    assert "parameters.times: 0 is less than the minimum 1" in result.output
    assert "Traceback" not in result.output
    bad = CliRunner().invoke(app, ["plan", str(EXAMPLES / "hello.yaml"), "--params", "[1]"])
    assert bad.exit_code == 2 and "must be a JSON object" in bad.output


def test_a_string_param_keeps_its_text_and_the_run_key_and_compensations_are_shown() -> None:
    result = CliRunner().invoke(app, ["plan", str(EXAMPLES / "deploy.yaml"), "-p", "environment=prod",
                                      "-p", "version=1.0"])  # fmt: skip
    assert result.exit_code == 0, result.output
    assert '"version": "1.0"' in result.output  # not the number 1.0
    assert "concurrency of the run: key deploy-prod, at most 1 at once; when taken it waits in line up to 1h" in (
        " ".join(result.output.split())
    )
    trip = CliRunner().invoke(app, ["plan", str(EXAMPLES / "trip_booking.yaml"), "-p", "trip_id=T-1"])
    assert trip.exit_code == 0, trip.output
    assert "book_flight (python), book_hotel (python), book_car (python)" in " ".join(trip.output.split())
