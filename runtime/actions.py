"""An NPC's action calls: which ones count, their arguments, and the acknowledgement the model hears.

The model calls an action in the commentary channel (`to=functions.open_door`); the game gets it as
an `action` frame. Calls the NPC's profile does not list, and calls past MAX_ACTIONS_PER_REPLY, are
ignored (logged), never sent.
"""
from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from typing import Any

from runtime import harmony
from runtime.npc import Npc
from runtime.protocol import loggable
from runtime.tokenizer import HarmonyTokenizer

log = logging.getLogger(__name__)

MAX_ACTIONS_PER_REPLY = 4


@dataclass(frozen=True)
class NpcAction:
    name: str
    arguments: Any


class ActionCalls:
    """The calls of one reply."""

    def __init__(self, npc: Npc, request_id: str):
        self.allowed = {a.name for a in npc.actions}
        self.request_id = request_id
        self.actions: list[NpcAction] = []
        self.last_recipient = "functions.unknown"

    def on_call(self, ev: harmony.MessageEnd) -> NpcAction | None:
        """A message the model ended with <|call|>: the action to send the game, or None to ignore it."""
        self.last_recipient = ev.recipient or "functions.unknown"
        name = (ev.recipient or "").removeprefix("functions.")
        if name not in self.allowed or len(self.actions) >= MAX_ACTIONS_PER_REPLY:
            log.info("request %s: ignored call to %s (allowed: %s)", loggable(self.request_id),
                     loggable(ev.recipient), sorted(self.allowed))
            return None
        try:
            args = json.loads(ev.text) if ev.text.strip() else {}
        except json.JSONDecodeError:
            args = {"raw": ev.text}
        action = NpcAction(name, args)
        self.actions.append(action)
        return action

    def acknowledgement(self, tok: HarmonyTokenizer) -> list[int]:
        """What the model hears after a call: the action happened; then it goes on as the assistant."""
        return (harmony.message(tok, f"{self.last_recipient} to=assistant", '"ok"', harmony.COMMENTARY)
                + harmony.assistant_open(tok))
