"""`notify` on the workflow and on approval tasks: the model, located errors, template scopes and limits."""

from __future__ import annotations

import textwrap
from datetime import timedelta

import pytest
import yaml
from jsonschema import Draft202012Validator

from workflow_engine.dsl import DslError, WorkflowDefinition, parse_definition
from workflow_engine.dsl.notify import MAX_RECIPIENTS
from workflow_engine.dsl.schema import json_schema

VALID = """\
name: notified
params:
  manager_email: {type: string, default: boss@example.com}
notify:
  events: [failure]
  webhook:
    url: https://hooks.example.com/T000
    headers: {Authorization: "Bearer ${{ secrets.HOOK_TOKEN }}"}
    timeout: 5s
  email:
    to: [finance@example.com]
    subject: "${{ workflow.name }} needs you"
tasks:
  - id: manager_approval
    type: approval
    notify: {email: {to: ["${{ params.manager_email }}"]}}
  - id: after
    activity_type: log
    config: {message: done}
"""


def issues(text: str) -> list[str]:
    """Parse `text` as `f.yaml`, require a `DslError`, and return its issues as text."""
    with pytest.raises(DslError) as caught:
        parse_definition(textwrap.dedent(text).lstrip("\n"), file="f.yaml")
    return [str(issue) for issue in caught.value.issues]


def test_workflow_and_task_notify_parse_and_survive_a_stored_round_trip() -> None:
    definition = parse_definition(VALID, file="f.yaml")
    assert definition.notify is not None and definition.notify.events == ["failure"]
    assert definition.notify.webhook is not None and definition.notify.webhook.method == "POST"
    assert definition.notify.webhook.timeout == timedelta(seconds=5)
    task = definition.tasks[0]
    assert task.type == "approval" and task.notify is not None and task.notify.webhook is None
    assert WorkflowDefinition.from_stored(definition.model_dump(mode="json")) == definition
    Draft202012Validator(json_schema()).validate(yaml.safe_load(VALID))


def test_events_default_to_both_and_webhooks_to_a_10s_post() -> None:
    definition = parse_definition(
        "name: x\nnotify: {webhook: {url: 'https://h.example.com/'}}\ntasks:\n  - {id: a, type: approval}\n"
    )
    assert definition.notify is not None and definition.notify.events == ["approval", "failure"]
    assert definition.notify.webhook is not None and definition.notify.webhook.timeout == timedelta(seconds=10)


def test_notify_outside_the_workflow_and_approval_tasks_keeps_its_located_unknown_field() -> None:
    found = issues("""
        name: x
        tasks:
          - id: a
            activity_type: log
            config: {message: hi}
            notify: {email: {to: [a@example.com]}}
          - id: b
            type: set
            config: {n: 1}
            notify: {email: {to: [a@example.com]}}
        """)
    assert found == ["tasks[0].notify: unknown field (f.yaml:6:5)", "tasks[1].notify: unknown field (f.yaml:10:5)"]


@pytest.mark.parametrize(
    ("block", "path", "message"),
    [
        ("{}", "notify", "notify needs a webhook, an email, or both"),
        ("{webhook: {url: ftp://x}}", "notify.webhook.url", "'ftp://x' is not an absolute http(s) URL"),
        ("{webhook: {url: /relative}}", "notify.webhook.url", "'/relative' is not an absolute http(s) URL"),
        ("{webhook: {url: 'https://h.example.com', timeout: 2m}}", "notify.webhook", "timeout must be at most 60s"),
        ("{webhook: {url: 'https://h.example.com', method: GET}}", "notify.webhook.method", "'POST', 'PUT' or 'PATCH'"),
        ("{webhook: {url: 'https://h.example.com', headers: {'Bad Name': x}}}", "notify.webhook.headers",
         "header 'Bad Name' needs a token name and a single-line value"),
        ("{email: {to: [not-an-address]}}", "notify.email.to[0]", "'not-an-address' is not an email address"),
        ("{email: {to: []}}", "notify.email.to", "at least 1 item"),
        ("{events: [], email: {to: [a@b.c]}}", "notify.events", "at least 1 item"),
        ("{events: [success], email: {to: [a@b.c]}}", "notify.events[0]", "'approval' or 'failure'"),
        ("{sms: {to: x}, email: {to: [a@b.c]}}", "notify.sms", "unknown field"),
    ],
)  # fmt: skip
def test_invalid_blocks_are_located(block: str, path: str, message: str) -> None:
    with pytest.raises(DslError) as caught:
        parse_definition(f"name: x\nnotify: {block}\ntasks:\n  - {{id: a, type: approval}}\n", file="f.yaml")
    [issue] = caught.value.issues
    assert (issue.path, issue.line) == (path, 2)
    assert message in issue.message


def test_sizes_are_limited() -> None:
    tail = "\ntasks:\n  - {id: a, type: approval}\n"
    to = ", ".join(f"u{i}@example.com" for i in range(MAX_RECIPIENTS + 1))
    [found] = issues(f"name: x\nnotify: {{email: {{to: [{to}]}}}}" + tail)
    assert found.startswith(f"notify.email.to: List should have at most {MAX_RECIPIENTS} items")
    long_url = "https://h.example.com/" + "x" * 2048
    [found] = issues(f"name: x\nnotify: {{webhook: {{url: '{long_url}'}}}}" + tail)
    assert found.startswith("notify.webhook.url: String should have at most 2048 characters")


def test_templates_follow_the_scope_rules_of_their_place() -> None:
    found = issues("""
        name: x
        notify:
          webhook: {url: "https://h.example.com/${{ params.path }}", headers: {X: "${{ secrets.T }}"}}
          email: {to: ["${{ secrets.T }}"], subject: "${{ item }} ${{ error.message }}"}
        tasks:
          - id: a
            type: approval
            notify:
              email: {to: ["${{ tasks.b.output }}", "${{ unknown.x }}"]}
              webhook:
                url: "https://h.example.com/"
                headers: {X: "${{ secrets.T }}", Y: "${{ secrets.T + params.p }}"}
          - id: b
            type: set
            config: {n: 1}
        """)
    assert found == [
        "notify.email.to[0]: 'secrets' is available only in the config of activity tasks and in notify webhooks, "
        "where the worker resolves it (in 'secrets.T') (f.yaml:4:16)",
        "notify.email.subject: 'item' is available only inside the config of a for_each task (in 'item') (f.yaml:4:37)",
        "notify.email.subject: 'error' is available only in on_failure tasks (in 'error.message') (f.yaml:4:37)",
        "tasks[0].notify.email.to[0]: task 'b' is not upstream of this task (in 'tasks.b.output') (f.yaml:9:20)",
        "tasks[0].notify.email.to[1]: unknown name 'unknown' in 'unknown.x'; use one of params, tasks, item, index, "
        "workflow, error, secrets (f.yaml:9:45)",
        "tasks[0].notify.webhook.headers.Y: an expression reading secrets may read nothing else: it runs in the "
        "worker (in 'secrets.T + params.p') (f.yaml:12:42)",
    ]
