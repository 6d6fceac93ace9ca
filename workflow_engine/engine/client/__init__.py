"""What the API and CLI call to start, inspect and steer runs on Temporal."""
