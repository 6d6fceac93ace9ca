"""workflow-engine: durable YAML workflows on Temporal."""
