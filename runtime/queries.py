"""The questions a server answers at once, from the main thread (health, stats, list_npcs), and
reload_profiles' answer, made on the profile watcher's thread (runtime/profile_watcher.py), which also
reloads when files change."""
from __future__ import annotations

import logging
import os
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from runtime.server import Server

log = logging.getLogger(__name__)


def answer(server: "Server", kind: str) -> dict[str, Any]:
    """The `done` fields for a query of this kind."""
    e = server.engine
    uptime = round(time.perf_counter() - server.started_at, 1)
    if kind == "health":
        status = "stopping" if server.stopping.is_set() else "failed" if server.worker_state == "failed" else "ok"
        return dict(status=status, worker=server.worker_state, uptime_s=uptime,
                    queue=len(server.scheduler.queued()), npcs=len(e.npcs))
    if kind == "stats":
        b = server.batch
        return dict(uptime_s=uptime, queue=len(server.scheduler.queued()), counters=server.counters.snapshot(),
                    batch={"live": len(b), "max": b.max_batch, "steps": b.steps_run, "rows": b.rows_stepped,
                           "mean_size": round(b.rows_stepped / b.steps_run, 2) if b.steps_run else 0.0},
                    sessions=len(e.store), cache_bytes=e.store.bytes_used(),
                    cost_model={"prefill_ms_per_token": round(e.cost.prefill_ms_per_token, 4),
                                "decode_ms_per_token": round(e.cost.decode_ms_per_token, 4)},
                    model={"folder": e.session.folder.name, "provider": e.session.session.get_providers()[0],
                           "op_set": e.session.manifest.op_set, "dtype": e.session.manifest.dtype})
    if kind == "list_npcs":
        return dict(npcs=[{"id": n.id, "name": n.name, "reasoning_effort": n.reasoning_effort,
                           "deadline_ms": n.deadline_ms, "actions": [a.name for a in n.actions]}
                          for n in sorted(e.npcs.values(), key=lambda n: n.id)])
    raise ValueError(f"not a query answered at once: {kind}")


def reload_report(server: "Server") -> dict[str, Any]:
    """Reload the profiles (on the profile watcher's thread) and return a `reload_profiles` answer's fields."""
    result = reload_profiles(server)
    return dict(loaded=result.loaded, kept=result.kept, removed=result.removed, npcs=sorted(server.engine.npcs),
                errors=_once([without_server_paths(server.registry.folder, x.to_dict()) for x in result.problems]))


def reload_profiles(server: "Server"):
    """Read changed profile files; the engine gets the NPCs that load (a broken edit keeps the last good)."""
    result = server.registry.reload()
    if result.changed:
        server.engine.set_npcs(server.registry.npcs)
        log.info("profiles reloaded: loaded %s, removed %s", result.loaded or "-", result.removed or "-")
    return result


def _once(errors: list[dict]) -> list[dict]:
    """The errors in order, each once (a link out of the folder turns all its problems into one)."""
    seen, out = set(), []
    for e in errors:
        key = (e["file"], e["line"], e["key"], e["message"])
        if key not in seen:
            seen.add(key)
            out.append(e)
    return out


def without_server_paths(folder: Path, problem: dict) -> dict:
    """A profile problem as a client sees it: files named relative to the profiles folder, so the answer
    does not reveal where the server keeps its files."""
    folders = sorted({str(_resolved(folder)), str(folder)}, key=len, reverse=True)

    def shown(text: str) -> str:
        for name in folders:
            text = text.replace(name + os.sep, "").replace(name, "the profiles folder")
        return text
    path = Path(problem["file"])
    # the file's own name in the folder, never where a link in it points (/proc/<pid>/environ, a secret)
    file = shown(str(_resolved(path.parent) / path.name))
    file = path.name if os.path.isabs(file) else file
    if not _resolved(path).is_relative_to(_resolved(folder)):
        # a link out of the folder: its problems quote what the file holds, which is not a client's to read
        return {"file": file, "line": None, "key": "", "message": "a link to a file outside the profiles folder "
                                                                  "that is not a valid profile; its problems are in "
                                                                  "the server log"}
    return {**problem, "file": file, "message": shown(problem["message"])}


def _resolved(path: Path) -> Path:
    """Where a path leads, links followed as far as they go: Path.resolve() raises on a link loop (a profile
    linking to itself made reload_profiles answer `internal`), os.path.realpath stops at it."""
    return Path(os.path.realpath(path))
