"""A helper process's lifeline: it exits when the process that started it is gone, even when that one was killed."""

from __future__ import annotations

import os
import threading
import time

# How often the helper looks whether its parent is still there.
CHECK_SECONDS = 1.0


def exit_with_parent(parent: int) -> None:
    """Process-pool initializer: watch `parent` (the starting process's pid) and leave as soon as it is gone.

    A pool's worker only notices its parent's death when it next waits for work, and an idle one never does:
    after a SIGKILL of the API it would live on as an orphan.
    """

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(CHECK_SECONDS)
        os._exit(0)

    threading.Thread(target=watch, name="exit-with-parent", daemon=True).start()
