"""Example plugin module: enable it with PLUGINS=text_plugins, then use `activity_type: slugify`.

- id: slug
  activity_type: slugify
  config: {text: "${{ params.title }}"}
"""

import re

from workflow_engine.plugins import plugin


@plugin("slugify")
def slugify(config: dict[str, object]) -> str:
    """Turn `config.text` into a URL slug ("Hello, World!" -> "hello-world")."""
    text = str(config.get("text", ""))
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")
