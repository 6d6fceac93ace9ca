"""Import of user modules: the workflows directory first, then installed packages."""

from __future__ import annotations

import hashlib
import importlib
import importlib.util
import sys
from pathlib import Path
from types import ModuleType


def import_user_module(workflows_dir: Path, module_name: str) -> ModuleType:
    """Import `module_name` from `workflows_dir` when a file there matches, else from sys.path."""
    candidate = workflows_dir.resolve().joinpath(*module_name.split(".")).with_suffix(".py")
    if candidate.is_file():
        # keyed by path, so two directories with a module of the same name never collide
        digest = hashlib.sha256(str(candidate).encode()).hexdigest()[:12]
        key = f"_workflow_engine_user_{digest}.{module_name}"
        if key not in sys.modules:
            spec = importlib.util.spec_from_file_location(key, candidate)
            if spec is None or spec.loader is None:
                raise ImportError(f"cannot load {candidate}")
            module = importlib.util.module_from_spec(spec)
            sys.modules[key] = module
            try:
                spec.loader.exec_module(module)
            except BaseException:
                del sys.modules[key]
                raise
        return sys.modules[key]
    return importlib.import_module(module_name)
