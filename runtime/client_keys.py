"""The `--client-keys` allow-list, read again when its folder changes: a key taken out stops getting in (new
handshakes are refused, and its open connections are closed at their next message), a key put in starts
getting in, without a restart. The authenticator thread asks `callback` for every handshake."""
from __future__ import annotations

import logging
from pathlib import Path

log = logging.getLogger(__name__)


class AllowList:
    def __init__(self, folder: Path):
        self.folder = Path(folder)
        self._stamp = self._listing()
        self.keys = self._load()

    def _listing(self) -> tuple:
        try:
            return tuple(sorted((p.name, st.st_mtime_ns, st.st_size)
                                for p in self.folder.glob("*.key") for st in (p.stat(),)))
        except OSError:
            return ()

    def _load(self) -> frozenset[str]:
        from zmq.auth import load_certificates

        try:
            return frozenset(k.decode() if isinstance(k, bytes) else k for k in load_certificates(str(self.folder)))
        except Exception as exc:  # noqa: BLE001 - a broken folder lets nobody in, rather than everyone
            log.error("client keys: cannot read %s (%s); no client key is allowed until it is fixed", self.folder, exc)
            return frozenset()

    def refresh(self) -> bool:
        """Read the folder again if its key files changed; whether they did."""
        stamp = self._listing()
        if stamp == self._stamp:
            return False
        keys = self._load()
        log.info("client keys: %s read again, %d allowed (%d added, %d removed)", self.folder, len(keys),
                 len(keys - self.keys), len(self.keys - keys))
        self._stamp, self.keys = stamp, keys  # one assignment: the authenticator thread reads it
        return True

    def allows(self, user_id: str) -> bool:
        return user_id in self.keys

    def callback(self, domain: str, client_key: bytes | str) -> bool:
        """pyzmq's credentials-provider hook: whether a handshake's (z85) client key may get in."""
        return self.allows(client_key.decode() if isinstance(client_key, bytes) else client_key)
