"""Does an NPC fit the model's context? One answer for the engine, `parley lint --model` and hot reload.

A reply needs its NPC's fixed prompt (system + developer messages: persona, knowledge, actions), room
for the conversation and the player's line, and the rows its decode may fill (`reply_reserve`). A
profile whose prompt alone leaves no room can never answer, so it is refused when it is loaded, with
the numbers, instead of failing every request.
"""
from __future__ import annotations

from pathlib import Path

from runtime import harmony
from runtime.manifest import Manifest
from runtime.npc import Npc
from runtime.tokenizer import HarmonyTokenizer

# Room past the budgets for what the model writes around them (message headers, a final message after
# an empty one) and for acknowledging its action calls.
REPLY_HEADROOM_TOKENS = 64
# Less room than this for the conversation and the player's line is no room at all.
MIN_TURN_TOKENS = 64


def reply_reserve(npc: Npc, force_len: int) -> int:
    """Cache rows a reply may fill after its prompt: everything sampled, the forced final channel and
    injected action acknowledgements. Admission, the cache size and the decode loop all use this one
    number: the decode loop ends a reply ("length") rather than feed a token past it."""
    return npc.max_reasoning_tokens + npc.max_final_tokens + force_len + REPLY_HEADROOM_TOKENS


def npc_prefix(tok: HarmonyTokenizer, npc: Npc) -> list[int]:
    """The NPC's fixed prompt: the same on every request, so its KV is computed once."""
    return harmony.render_prefix(tok, harmony.system_text(npc.reasoning_effort, npc.world), npc.developer_text())


class ContextFit:
    """Checks NPCs against one model's tokenizer and context length."""

    def __init__(self, tok: HarmonyTokenizer, max_context: int):
        self.tok, self.max_context = tok, max_context
        self.force_len = len(harmony.force_final(tok, in_message=True))

    @classmethod
    def for_model_folder(cls, folder: Path | str) -> "ContextFit":
        """From a model folder's manifest and tokenizer alone (no graph is loaded)."""
        manifest = Manifest.read(folder)
        return cls(HarmonyTokenizer(Path(folder), manifest), manifest.kv_cache.max_context)

    def problem(self, npc: Npc) -> str | None:
        """Why this NPC can never answer with this model, or None if it fits."""
        prefix = len(npc_prefix(self.tok, npc))
        reserve = reply_reserve(npc, self.force_len)
        room = self.max_context - prefix - reserve
        if room >= MIN_TURN_TOKENS:
            return None
        return (f"the NPC's fixed prompt is {prefix} tokens (persona, knowledge, style, actions) and its budgets "
                f"reserve {reserve} more (max_reasoning_tokens + max_final_tokens + {reserve - npc.max_reasoning_tokens - npc.max_final_tokens}), "
                f"leaving {max(room, 0)} of the model's {self.max_context}-token context for the conversation "
                f"(at least {MIN_TURN_TOKENS} are needed); shorten the persona, knowledge or actions, or lower the budgets")
