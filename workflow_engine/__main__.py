"""Entry point of `python -m workflow_engine`."""

from workflow_engine.cli import app

if __name__ == "__main__":
    app()
