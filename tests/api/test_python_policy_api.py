"""The API refuses `python` tasks that call what the operator did not allow: a located 422, and in directory scans."""

from __future__ import annotations

from pathlib import Path

import httpx

YAML = {"content-type": "application/yaml"}


def one_call(function: str, name: str = "policy") -> str:
    return f"name: {name}\ntasks:\n  - id: call\n    activity_type: python\n    config:\n      function: {function}\n"


async def test_registering_or_validating_a_refused_function_is_a_located_422(api: httpx.AsyncClient) -> None:
    for route, function, message in (
        ("/workflows", "os:system", "module 'os' is never allowed"),
        ("/workflows", "'${{ params.f }}'", "must be a literal 'module:function'"),
        ("/workflows/validate", "subprocess:run", "module 'subprocess' is never allowed"),
        ("/workflows/validate", "json:dumps", "add 'json' to PYTHON_MODULES"),
    ):
        response = await api.post(route, json={"yaml": one_call(function), "file": "policy.yaml"})
        assert response.status_code == 422, (route, function)
        (error,) = response.json()["errors"]
        assert (error["path"], error["file"], error["line"], error["column"]) == (
            "tasks[0].config.function", "policy.yaml", 6, 7
        )  # fmt: skip
        assert message in error["message"]
    assert (await api.get("/workflows/policy")).status_code == 404


async def test_a_module_added_to_the_workflows_dir_counts_at_once(api: httpx.AsyncClient, workflows_dir: Path) -> None:
    assert (await api.post("/workflows", content=one_call("added:run"), headers=YAML)).status_code == 422
    (workflows_dir / "added.py").write_text("def run():\n    return 'ran'\n")
    registered = await api.post("/workflows", content=one_call("added:run"), headers=YAML)
    assert registered.status_code == 201, registered.text


async def test_a_scan_skips_a_file_calling_a_refused_function_and_keeps_the_examples(
    api: httpx.AsyncClient, workflows_dir: Path
) -> None:
    (workflows_dir / "sneaky.yaml").write_text(one_call("builtins:eval", name="sneaky"))
    report = (await api.post("/workflows/reload")).json()
    (issue,) = report["invalid"][str(workflows_dir / "sneaky.yaml")]
    assert issue["path"] == "tasks[0].config.function" and issue["line"] == 6
    assert "module 'builtins' is never allowed" in issue["message"]
    assert set(report["invalid"]) == {str(workflows_dir / "sneaky.yaml")}  # the examples call allowed modules
    assert (await api.get("/workflows/sneaky")).status_code == 404
    for example in ("hello", "order_processing_workflow", "human_approval_workflow", "sample", "big", "broken"):
        assert (await api.get(f"/workflows/{example}")).status_code == 200, example
