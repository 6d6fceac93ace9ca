"""Plugins: discovered from PLUGINS modules, accepted by the DSL, run by the worker as activities."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest
from temporalio.client import Client, WorkflowFailureError

from tests.conftest import REPO_ROOT
from workflow_engine.dsl import DslError, parse_definition
from workflow_engine.engine.client.executions import start_execution
from workflow_engine.engine.types import RunInput
from workflow_engine.plugins import PluginError, activity_types, discover
from workflow_engine.settings import Settings
from workflow_engine.worker import build_worker

FLOW = """
name: plugged
params:
  title: {type: string, required: true}
tasks:
  - id: slug
    activity_type: slugify
    config: {text: "${{ params.title }}"}
  - id: shout
    activity_type: shout
    config: {text: "${{ tasks.slug.output }}"}
output: "${{ tasks.shout.output }}"
"""

EXTRA = """
from workflow_engine.plugins import plugin


@plugin()
async def shout(config: dict) -> str:
    if config["text"] == "boom":
        raise LookupError("nothing to shout")
    return config["text"].upper() + "!"
"""


@pytest.fixture
def plugin_settings(settings: Settings, workflows_dir: Path) -> Settings:
    """Settings whose PLUGINS list the repository's example plugin and a test plugin."""
    (workflows_dir / "text_plugins.py").write_text((REPO_ROOT / "workflows" / "text_plugins.py").read_text())
    (workflows_dir / "loud.py").write_text(EXTRA)
    return settings.model_copy(update={"plugins": "text_plugins, loud"})


def test_plugins_extend_the_activity_types_the_dsl_accepts(plugin_settings: Settings) -> None:
    known = activity_types(plugin_settings)
    assert known[-2:] == ("shout", "slugify")
    parse_definition(FLOW, activity_types=known)
    with pytest.raises(DslError, match="unknown activity_type 'slugify'"):
        parse_definition(FLOW)


@pytest.mark.parametrize(
    ("source", "message"),
    [
        ("from workflow_engine.plugins import plugin\n@plugin('log')\ndef f(c): return 1\n", "replace a built-in"),
        ("from workflow_engine.plugins import plugin\n@plugin('Bad-Name')\ndef f(c): return 1\n", "lower-case"),
        ("raise RuntimeError('broken module')\n", "cannot import 'bad': RuntimeError: broken module"),
        ("from workflow_engine.plugins import plugin\n@plugin('slugify')\ndef f(c): return 1\n", "declared by both"),
    ],
)
def test_bad_plugins_are_clear_errors(
    plugin_settings: Settings, workflows_dir: Path, source: str, message: str
) -> None:
    (workflows_dir / "bad.py").write_text(source)
    with pytest.raises(PluginError, match=message):
        discover(plugin_settings.model_copy(update={"plugins": "text_plugins,bad"}))


async def test_plugins_run_as_activities(client: Client, plugin_settings: Settings) -> None:
    definition = parse_definition(FLOW, activity_types=activity_types(plugin_settings))
    async with build_worker(client, plugin_settings):
        results = []
        for title in ("Hello, World!", "boom"):
            execution_id = f"plugged-{uuid.uuid4().hex}"
            await start_execution(
                client, workflow_name="plugged", execution_id=execution_id,
                task_queue=plugin_settings.temporal_task_queue,
                run_input=RunInput(definition=definition.model_dump(mode="json"), revision=1, params={"title": title}),
            )  # fmt: skip
            try:
                results.append(await client.get_workflow_handle(execution_id).result())
            except WorkflowFailureError as exc:
                results.append(str(exc.cause))
    assert results[0] == "HELLO-WORLD!"
    assert "LookupError: nothing to shout" in results[1]
