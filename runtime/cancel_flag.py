"""A reply's cancel flag, which the reply closes as it ends: a cancel either comes before the end, and the
reply ends `cancelled`, or after it, and the one who asked is told it came too late. With a bare flag a
cancel could land between the reply's last look at it and its `done` (an outside client was told
`found: true` and then got `done`)."""
from __future__ import annotations

import threading


class CancelFlag(threading.Event):
    def __init__(self) -> None:
        super().__init__()
        self._gate = threading.Lock()
        self._closed = False

    def request(self) -> bool:
        """Cancel the reply; False when it has already ended (closed): nothing changes then."""
        with self._gate:
            if self._closed:
                return False
            self.set()
            return True

    def close(self) -> bool:
        """The reply is about to end as it is; False when a cancel came first (it must end cancelled)."""
        with self._gate:
            if self.is_set():
                return False
            self._closed = True
            return True
