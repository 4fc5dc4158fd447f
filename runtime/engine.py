"""The engine: an NPC hears a line and answers in character, on time, with its reasoning hidden.

    engine = Engine("models/demo", {"brenna": npc})
    for event in engine.reply(ReplyRequest(npc="brenna", text="How much for a sword?", session_id="p1")):
        ...  # FinalDelta (stream to the game), NpcAction, then one ReplyResult

One reply runs at a time per engine; the server's scheduler decides the order.
"""
from __future__ import annotations

import json
import logging
import random
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator, Mapping

import numpy as np

from runtime import budget, harmony, protocol
from runtime.context_fit import REPLY_HEADROOM_TOKENS, ContextFit, npc_prefix, reply_reserve
from runtime.conversations import Conversation, ConversationStore, common_prefix
from runtime.cost_model import CostModel
from runtime.harmony import FINAL, Turn
from runtime.npc import Npc
from runtime.sampler import Sampler, SamplingParams
from runtime.session import KvCache, ModelSession, SessionOptions
from runtime.session_blob import MAX_TURNS
from runtime.tokenizer import HarmonyTokenizer

log = logging.getLogger(__name__)

MAX_ACTIONS_PER_REPLY = 4
FINISH_MARGIN_MS = 2.0  # time to wrap a reply up after its last step (see _generate)


class EngineError(Exception):
    code = "internal"


class UnknownNpc(EngineError):
    code = "unknown_npc"


class BadRequest(EngineError):
    code = "bad_message"


class PromptTooLong(EngineError):
    code = protocol.PROMPT_TOO_LONG


class SessionEvicted(EngineError):
    code = "session_evicted"


class UnknownSession(EngineError):
    code = "unknown_session"


@dataclass(frozen=True)
class ReplyRequest:
    npc: str
    text: str
    session_id: str | None = None  # None: no memory of earlier turns
    speaker: str = "Player"
    game_state: Mapping[str, Any] = field(default_factory=dict)
    deadline_ms: float | None = None  # None: the NPC's default
    sampling: SamplingParams | None = None  # None: the NPC's
    request_id: str = ""
    received_at: float | None = None  # time.monotonic() at arrival; the deadline counts from here


@dataclass(frozen=True)
class Step:
    """A reply asks its driver to append `ids` to its KV and answer with (StepOutput, batch row)."""
    ids: list[int]


class Release:
    """A reply is done with the model: its driver puts the KV back into the conversation's cache."""


RELEASE = Release()


@dataclass(frozen=True)
class FinalDelta:
    text: str


@dataclass(frozen=True)
class NpcAction:
    name: str
    arguments: Any


@dataclass(frozen=True)
class ReplyStats:
    request_id: str
    npc: str
    prompt_tokens: int
    reused_tokens: int  # prompt tokens whose KV came from a cache
    reasoning_tokens: int
    final_tokens: int
    ttft_ms: float | None  # time to the first final-channel text
    total_ms: float
    prefill_ms: float
    decode_tok_s: float
    reasoning_budget: int
    reasoning_cut: bool
    fallback_used: bool
    deadline_ms: float
    deadline_met: bool
    finish_reason: str  # return, end, length, deadline, cancelled, fallback
    input_truncated: bool
    dropped_turns: int

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


@dataclass(frozen=True)
class ReplyResult:
    text: str
    stats: ReplyStats
    reasoning: str  # hidden chain of thought: for designers' debug logs, never for players
    actions: tuple[NpcAction, ...] = ()
    tokens: tuple[int, ...] = ()  # every id after the prompt, sampled or injected, stop token included


@dataclass(frozen=True)
class EngineOptions:
    session: SessionOptions = SessionOptions()
    max_sessions: int = 256
    max_cache_bytes: int = 1 << 30
    min_cache_length: int = 256
    # None: sample from the graph's top-K candidates on a GPU (the full logits never leave it), and
    # from the full logits on the CPU (no copy to save). True/False force one way.
    sample_from_candidates: bool | None = None


class Engine:
    def __init__(self, model_folder: Path | str, npcs: Mapping[str, Npc], options: EngineOptions = EngineOptions(),
                 cost_model: CostModel | None = None):
        self.options = options
        self.session = ModelSession(model_folder, options.session)
        self.tok = HarmonyTokenizer(self.session.folder, self.session.manifest)
        self.npcs: dict[str, Npc] = dict(npcs)
        self.cost = cost_model or CostModel.measure(self.session)
        self.store = ConversationStore(options.max_sessions, options.max_cache_bytes)
        self._prefixes: dict[tuple[int, ...], KvCache] = {}
        self.fit = ContextFit(self.tok, self.session.max_context)
        self._lock = threading.Lock()
        log.info("engine ready: %d NPCs; cost model %.2f ms/prompt token, %.2f ms/decode token",
                 len(self.npcs), self.cost.prefill_ms_per_token, self.cost.decode_ms_per_token)

    # ---- public API ---------------------------------------------------------------------------

    def set_npcs(self, npcs: Mapping[str, Npc]) -> None:
        """Swap in new profiles without waiting for a reply in flight (it keeps the profile it started
        with). Conversations keep their history; caches re-prefill only what the new persona changed."""
        self.npcs = dict(npcs)

    def reset_session(self, npc: str, session_id: str) -> bool:
        with self._lock:
            self.store.evicted.discard((npc, session_id))
            return self.store.drop(npc, session_id)

    def export_session(self, npc: str, session_id: str) -> list[Turn]:
        with self._lock:
            conv = self.store.get(npc, session_id)
            if conv is None:
                if (npc, session_id) in self.store.evicted:
                    raise SessionEvicted(f"session {session_id!r} of {npc!r} was evicted (too many sessions); "
                                         "export sessions you want to keep before the limit is reached")
                raise UnknownSession(f"no session {session_id!r} with NPC {npc!r}")
            return list(conv.history)

    def npc(self, name: str) -> Npc:
        """The NPC's current profile, or UnknownNpc naming the known ones."""
        npc = self.npcs.get(name)
        if npc is None:
            raise UnknownNpc(f"unknown NPC {name!r}; known: {', '.join(sorted(self.npcs)) or 'none'}")
        return npc

    def import_session(self, npc: str, session_id: str, history: list[Turn]) -> None:
        self.npc(npc)
        if len(history) > MAX_TURNS:
            raise BadRequest(f"a session keeps at most {MAX_TURNS} turns; got {len(history)}")
        with self._lock:
            self.store.drop(npc, session_id)
            self.store.put(Conversation(npc, session_id, history=list(history)))

    def reply(self, req: ReplyRequest, cancel: threading.Event | None = None) -> Iterator[Any]:
        """Events: FinalDelta*, NpcAction*, then exactly one ReplyResult. One reply on its own; the
        server's DecodeBatch runs many at once."""
        with self._lock:
            reply = _Reply(self, req, cancel or threading.Event())
            steps, answer = reply.run(), None
            while True:
                try:
                    event = steps.send(answer)
                except StopIteration:
                    return
                answer = None
                if isinstance(event, Step):
                    answer = self.step_alone(reply.conv.cache, event.ids)
                elif not isinstance(event, Release):
                    yield event

    def step_alone(self, cache: KvCache, ids: list[int]):
        start = time.monotonic()
        out = self.session.step(np.array([ids]), cache)
        if len(ids) == 1:
            self.cost.observe_decode((time.monotonic() - start) * 1000)
        return out, 0

    def new_reply(self, req: ReplyRequest, cancel: threading.Event) -> "_Reply":
        """A reply for a driver that runs its Steps itself (the DecodeBatch); hold `lock` around it."""
        return _Reply(self, req, cancel, batched=True)

    @property
    def lock(self) -> threading.Lock:
        return self._lock

    # ---- helpers used by _Reply ---------------------------------------------------------------

    def prefix_cache(self, ids: list[int]) -> KvCache:
        key = tuple(ids)
        cache = self._prefixes.get(key)
        if cache is None:
            cache = self.session.new_cache(length=len(ids))
            self.session.run(np.array([ids]), cache)
            if len(self._prefixes) >= 64:
                self._prefixes.pop(next(iter(self._prefixes)))
            self._prefixes[key] = cache
        return cache

    def cache_for(self, need: int) -> KvCache:
        length = self.options.min_cache_length
        while length < need:
            length *= 2
        return self.session.new_cache(length=min(length, self.session.max_context))


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


class _Reply:
    """One reply from start to ReplyResult; holds the per-request state the loop needs."""

    def __init__(self, engine: Engine, req: ReplyRequest, cancel: threading.Event, batched: bool = False):
        self.e, self.req, self.cancel = engine, req, cancel
        self.batched = batched  # a decode batch feeds injected tokens one per step
        self.t0 = req.received_at if req.received_at is not None else time.monotonic()
        npc = engine.npc(req.npc)
        if not isinstance(req.text, str) or not req.text.strip():
            raise BadRequest("'text' must be a non-empty string")
        self.npc = npc
        self.deadline = float(req.deadline_ms if req.deadline_ms is not None else npc.deadline_ms)
        self.sampling = req.sampling or npc.sampling
        text = req.text[:npc.max_input_chars]
        text, cut = fit_tokens(engine.tok, text, npc.max_input_tokens)
        self.truncated = cut or len(req.text) > npc.max_input_chars
        self.user_text = user_content(req, text)
        self.reasoning: list[str] = []
        self.final: list[str] = []
        self.actions: list[NpcAction] = []
        self.n_reasoning = self.n_final = 0
        self.ttft: float | None = None
        self._last_call = "functions.unknown"
        self.generated: list[int] = []
        self.conv: Conversation | None = None
        self.tokens: list[int] = []  # what this reply's KV holds (prompt, then every token fed)
        # tokens the engine appends to close the reasoning and open the final channel
        self.force_len = engine.fit.force_len
        self.reserve = reply_reserve(npc, self.force_len)
        self.prompt_len = 0

    def elapsed_ms(self) -> float:
        return (time.monotonic() - self.t0) * 1000

    def slack_ms(self) -> float:
        return self.deadline - self.elapsed_ms()

    def finish_margin_ms(self) -> float:
        """Time kept in hand before the deadline: a step can run longer than the average (other
        rows, the machine), and ending a reply takes a moment (leaving the batch, the socket)."""
        cost = self.e.cost
        return FINISH_MARGIN_MS + max(0.5 * cost.decode_ms_per_token, cost.decode_overrun_ms)

    def run(self) -> Iterator[Any]:
        e, npc, tok = self.e, self.npc, self.e.tok
        sid = self.req.session_id
        if not sid:  # a one-off reply shares nothing and is stored nowhere: it starts from the NPC's prefix
            conv = None
        else:
            conv = e.store.get(npc.id, sid)
            if conv is None and (npc.id, sid) in e.store.evicted:
                raise SessionEvicted(f"session {sid!r} of {npc.id!r} was evicted to stay within the server's session "
                                     "limit; import it from the game's save (import_session) or reset_session to "
                                     "start over")
        conv = self.conv = conv or Conversation(npc.id, sid)
        prefix = npc_prefix(tok, npc)
        reserve = self.reserve
        history = list(conv.history) if self.req.session_id else []
        turns = [harmony.render_history(tok, [turn]) for turn in history]  # each turn rendered once
        new_turn = harmony.message(tok, "user", self.user_text) + harmony.assistant_open(tok)
        room = e.session.max_context - reserve - len(prefix) - len(new_turn)
        kept = sum(map(len, turns))
        dropped = 0
        while kept > room and dropped < len(turns):  # oldest turns go first
            kept -= len(turns[dropped])
            dropped += 1
        history = history[dropped:]
        prompt = prefix + [i for ids in turns[dropped:] for i in ids] + new_turn
        if len(prompt) + reserve > e.session.max_context:
            raise PromptTooLong(f"the prompt ({len(prompt)} tokens: the NPC's {len(prefix)}, this turn's "
                                f"{len(new_turn)} with the speaker and game state) plus this NPC's budgets "
                                f"({reserve}) exceed the model's context ({e.session.max_context}); send less game "
                                "state or lower the NPC's budgets")

        reuse = common_prefix(conv.tokens, prompt) if conv.cache is not None else 0
        reuse = min(reuse, len(prompt) - 1)  # at least one token must run to produce logits
        plan = budget.plan(e.cost, self.deadline - self.elapsed_ms(), len(prompt) - max(reuse, len(prefix)),
                           self.force_len, npc.expected_final_tokens, npc.max_reasoning_tokens, self.batched,
                           self.finish_margin_ms())
        if plan.fallback:
            log.info("request %s: fallback (%s)", protocol.loggable(self.req.request_id), plan.reason)
            text = random.choice(npc.fallback_lines)
            yield FinalDelta(text)
            yield self._result(conv, history, text, True, "fallback", len(prompt), reuse, dropped, plan)
            return

        cache = self._cache(conv, prompt, reuse, prefix)
        reused = int(cache.lengths[0])
        start = time.monotonic()
        out = e.session.step(np.array([prompt[reused:]]), cache)
        prefill_ms = (time.monotonic() - start) * 1000
        e.cost.observe_prefill(len(prompt) - reused, prefill_ms)
        conv.cache, conv.tokens = cache, list(prompt)
        self.tokens = list(prompt)
        self.prompt_len = len(prompt)

        decode_start = time.monotonic()
        finish, cut = yield from self._generate((out, 0), plan)
        decode_s = time.monotonic() - decode_start
        yield RELEASE
        conv.tokens = self.tokens
        text = "".join(self.final).strip(protocol.REPLY_WHITESPACE)
        fallback = not text and finish != "cancelled"
        if fallback:  # also after whitespace-only deltas: the deltas must add up to the reply text
            text = random.choice(npc.fallback_lines)
            yield FinalDelta(text)
        yield self._result(conv, history, text, fallback, finish, len(prompt), reused, dropped, plan,
                           prefill_ms, decode_s, cut)

    def _result(self, conv: Conversation, history: list[Turn], text: str, fallback: bool, finish: str,
                prompt_len: int, reused: int, dropped: int, plan: budget.Plan, prefill_ms: float = 0.0,
                decode_s: float = 0.0, cut: bool = False) -> ReplyResult:
        """Remember the turn (unless cancelled) and report what happened."""
        if self.req.session_id:
            if finish != "cancelled":
                conv.history = (history + [Turn(self.user_text, text)])[-MAX_TURNS:]
            self.e.store.put(conv)
        total = self.elapsed_ms()
        generated = self.n_reasoning + self.n_final
        stats = ReplyStats(
            request_id=self.req.request_id, npc=self.npc.id, prompt_tokens=prompt_len, reused_tokens=reused,
            reasoning_tokens=self.n_reasoning, final_tokens=self.n_final,
            ttft_ms=round(total, 2) if finish == "fallback" else self.ttft, total_ms=round(total, 2),
            prefill_ms=round(prefill_ms, 2),
            decode_tok_s=round(generated / decode_s, 1) if decode_s > 0 and generated else 0.0,
            reasoning_budget=plan.reasoning_tokens, reasoning_cut=cut, fallback_used=fallback,
            deadline_ms=self.deadline, deadline_met=total <= self.deadline, finish_reason=finish,
            input_truncated=self.truncated, dropped_turns=dropped)
        return ReplyResult(text, stats, "".join(self.reasoning), tuple(self.actions), tuple(self.generated))

    def _cache(self, conv: Conversation, prompt: list[int], reuse: int, prefix: list[int]) -> KvCache:
        """A cache holding the longest reusable prefix of `prompt`, big enough for the whole reply."""
        e = self.e
        need = len(prompt) + self.reserve
        cache = conv.cache
        if cache is None or cache.length < need:
            bigger = e.cache_for(need)
            if cache is not None and reuse:
                bigger.copy_rows_from(cache, reuse)
            cache = bigger
        if reuse < len(prefix):
            cache.copy_rows_from(e.prefix_cache(prefix), len(prefix))
            reuse = len(prefix)
        cache.lengths[:] = reuse
        return cache

    def _fits(self, n: int) -> bool:
        """Whether n more tokens stay within the rows this reply was admitted with."""
        return len(self.tokens) + n <= self.prompt_len + self.reserve

    def _run(self, ids: list[int]):
        """Append ids to this reply's KV (the driver runs the model); returns (StepOutput, row)."""
        answer = yield Step(ids)
        self.tokens.extend(ids)
        return answer

    def _generate(self, out, plan: budget.Plan):
        """The decode loop; returns (finish_reason, reasoning_cut)."""
        e, npc, tok = self.e, self.npc, self.e.tok
        parser = harmony.HarmonyParser(tok, in_header=True)
        sampler = Sampler(self.sampling)
        cost = e.cost
        answer_ms = budget.answer_cost_ms(cost, self.force_len, npc.expected_final_tokens, self.batched)
        min_answer_ms = budget.answer_cost_ms(cost, self.force_len, budget.MIN_FINAL_TOKENS, self.batched)
        forced = cut = False
        hard_cap = npc.max_reasoning_tokens + npc.max_final_tokens + REPLY_HEADROOM_TOKENS // 2
        on_device = e.options.sample_from_candidates
        if on_device is None:
            on_device = e.session.device != "cpu"
        while True:
            if self.cancel.is_set():
                return "cancelled", cut
            now = self.elapsed_ms()
            finish_margin = self.finish_margin_ms()
            in_final = parser.channel == FINAL
            if in_final:
                if self.n_final >= npc.max_final_tokens:
                    return "length", cut
                if now + cost.decode_ms_per_token + finish_margin > self.deadline:
                    return "deadline", cut
            elif not forced and now + min_answer_ms + finish_margin > self.deadline:
                # not even a minimal answer fits any more (the steps ran slower than planned):
                # stop now, and the NPC's fallback line goes out in time, rather than force late
                return "deadline", cut
            elif not forced and (self.n_reasoning >= plan.reasoning_tokens
                                 or now + answer_ms + cost.decode_ms_per_token + finish_margin > self.deadline
                                 or self.n_reasoning + self.n_final >= hard_cap):
                ids = harmony.force_final(tok, in_message=parser.state in ("body", "header"))
                if not self._fits(len(ids)):
                    return "length", cut
                self.generated.extend(ids)
                out = yield from self._run(ids)
                parser.open_final()
                forced = cut = True
                continue
            elif forced and self.n_reasoning + self.n_final >= hard_cap:
                return "length", cut
            token = sampler.from_step(out[0], out[1], prefer_candidates=on_device)
            self.generated.append(token)
            if parser.channel == FINAL:
                self.n_final += 1
            else:
                self.n_reasoning += 1
            done = None
            for ev in parser.feed(token):
                if isinstance(ev, harmony.TextDelta):
                    if ev.channel == FINAL:
                        text = protocol.speakable(ev.text)
                        if not text:
                            continue
                        if self.ttft is None:
                            self.ttft = round(self.elapsed_ms(), 2)
                        self.final.append(text)
                        yield FinalDelta(text)
                    else:
                        self.reasoning.append(ev.text)
                elif isinstance(ev, harmony.MessageEnd):
                    if ev.channel == FINAL:
                        done = "return" if ev.how == "return" else "end"
                    elif ev.how == "call":
                        action = self._action(ev)
                        if action is not None:
                            yield action
                elif isinstance(ev, harmony.Done):
                    done = done or ev.reason
            if done and (self.final or parser.done):
                return done, cut
            if parser.done:
                return done or "return", cut
            if not self._fits(1):
                return "length", cut
            out = yield from self._run([token])
            if parser.state == "idle" and token == tok.ids.get("<|call|>"):
                # tell the model the action happened, then let it continue as the assistant
                ids = (harmony.message(tok, f"{self._last_call} to=assistant", '"ok"', harmony.COMMENTARY)
                       + harmony.assistant_open(tok))
                if not self._fits(len(ids)):
                    return "length", cut
                self.generated.extend(ids)
                out = yield from self._run(ids)
                parser.state = "header"

    def _action(self, ev: harmony.MessageEnd) -> NpcAction | None:
        self._last_call = ev.recipient or "functions.unknown"
        name = (ev.recipient or "").removeprefix("functions.")
        allowed = {a.name for a in self.npc.actions}
        if name not in allowed or len(self.actions) >= MAX_ACTIONS_PER_REPLY:
            log.info("request %s: ignored call to %r (allowed: %s)", protocol.loggable(self.req.request_id), ev.recipient, allowed)
            return None
        try:
            args = json.loads(ev.text) if ev.text.strip() else {}
        except json.JSONDecodeError:
            args = {"raw": ev.text}
        action = NpcAction(name, args)
        self.actions.append(action)
        return action
