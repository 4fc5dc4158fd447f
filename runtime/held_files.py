"""On Windows a file or folder that was just written may be held for a moment by a virus scanner, the search
indexer or a sync client, and renaming or replacing it then fails with PermissionError. Elsewhere that
error means what it says, so it is raised at once."""
from __future__ import annotations

import os
import time
from typing import Callable


def retry_while_held(action: Callable[[], None], tries: int = 5, pause_s: float = 0.05) -> None:
    """Run `action`, again after a growing pause while Windows answers PermissionError (`tries` in all)."""
    for attempt in range(tries):
        try:
            action()
            return
        except PermissionError:
            if os.name != "nt" or attempt == tries - 1:
                raise
            time.sleep(pause_s * (attempt + 1))
