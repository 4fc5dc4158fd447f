"""A reply's prompt: the NPC's fixed prefix, the turns of its conversation that fit, and the new turn.

The player's line is cut to the NPC's limits (characters and tokens); the oldest turns go first when
the context is short; what a player controls is kept to one line so it cannot pass for the game's.
"""
from __future__ import annotations

from dataclasses import dataclass

from runtime import harmony
from runtime.context_fit import npc_prefix
from runtime.errors import PromptTooLong
from runtime.harmony import Turn
from runtime.npc import Npc
from runtime.requests import ReplyRequest
from runtime.tokenizer import HarmonyTokenizer


@dataclass(frozen=True)
class Prompt:
    ids: list[int]
    prefix_len: int  # the NPC's fixed prompt: ids[:prefix_len], the same on every request
    history: list[Turn]  # the earlier turns it holds
    dropped_turns: int  # the oldest turns left out to fit the context
    user_text: str  # the new turn's user message, as the history will keep it
    input_truncated: bool


def build(tok: HarmonyTokenizer, npc: Npc, req: ReplyRequest, history: list[Turn], max_context: int,
          reserve: int) -> Prompt:
    """`reserve`: the cache rows the reply may fill after its prompt (context_fit.reply_reserve)."""
    user_text, truncated = user_message(tok, npc, req)
    prefix = npc_prefix(tok, npc)
    turns = [harmony.render_history(tok, [turn]) for turn in history]  # each turn rendered once
    new_turn = harmony.message(tok, "user", user_text) + harmony.assistant_open(tok)
    room = max_context - reserve - len(prefix) - len(new_turn)
    kept, dropped = sum(map(len, turns)), 0
    while kept > room and dropped < len(turns):  # oldest turns go first
        kept -= len(turns[dropped])
        dropped += 1
    ids = prefix + [i for turn in turns[dropped:] for i in turn] + new_turn
    if len(ids) + reserve > max_context:
        raise PromptTooLong(f"the prompt ({len(ids)} tokens: the NPC's {len(prefix)}, this turn's {len(new_turn)} "
                            f"with the speaker and game state) plus this NPC's budgets ({reserve}) exceed the "
                            f"model's context ({max_context}); send less game state or lower the NPC's budgets")
    return Prompt(ids, len(prefix), list(history[dropped:]), dropped, user_text, truncated)


def user_message(tok: HarmonyTokenizer, npc: Npc, req: ReplyRequest) -> tuple[str, bool]:
    """The new turn's user message (what the history keeps of it, too), and whether the line was cut to
    the NPC's limits (characters, then tokens)."""
    text = req.text[:npc.max_input_chars]
    text, cut = fit_tokens(tok, text, npc.max_input_tokens)
    return user_content(req, text), cut or len(req.text) > npc.max_input_chars


def fit_tokens(tok: HarmonyTokenizer, text: str, limit: int) -> tuple[str, bool]:
    """The longest start of `text` whose tokens stay within `limit`, and whether it was cut. Characters
    are a poor measure of tokens (an emoji can be four or five), so the player's line is held to both."""
    if len(text.encode()) <= limit or len(tok.text(text)) <= limit:  # a token covers at least a byte
        return text, False
    low, high = 0, len(text)  # the longest prefix that fits: low fits, high does not
    while high - low > 1:
        middle = (low + high) // 2
        low, high = (middle, high) if len(tok.text(text[:middle])) <= limit else (low, middle)
    return text[:low], True


def user_content(req: ReplyRequest, text: str) -> str:
    """The user message: the speaker's line, then the game's state on a line of its own. What a player
    controls (the line, the name) is kept to one line, so nothing typed can render as the game's state
    line (a test compares the token ids)."""
    lines = [f"{one_line(req.speaker)}: {one_line(text)}"]
    if req.game_state:
        lines.append("Game state: " + "; ".join(f"{one_line(str(k))}={one_line(str(v))}"
                                                for k, v in req.game_state.items()))
    return "\n".join(lines)


def one_line(text: str) -> str:
    """Line breaks of every kind (newline, carriage return, Unicode separators) as spaces."""
    return " ".join(text.splitlines()) if text else text
