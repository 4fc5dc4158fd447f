"""One reply, from the request to its result: the only reply state machine.

Its driver is a DecodeBatch (runtime/decode_batch.py), which runs the model for many replies at once;
a reply on its own is a batch of one. The contract, in the order the driver calls it:

    ids = reply.begin()            # render the prompt, plan the budget, set up reply.cache;
                                   # None: it ended without the model (the fallback line, sent)
    out = model(ids, reply.cache)  # the prefill, on the conversation's own cache (row 0)
    feed = reply.next_ids(out, 0)  # the tokens to append next (the driver runs them, the last as a decode
                                   # step); [] when done
    ...                            # the driver runs `feed` (in a pool row) and asks again, until []
    reply.keep_kv(pool, row)       # the driver hands its reply.kv_tokens rows of KV back
    reply.finish()                 # the turn is kept, the result reported

Everything the reply says goes to its sink as it happens: FinalDelta (stream to the game), NpcAction,
and last one ReplyResult; or the exception that ended it (`abandon`, or raised by `begin`).
"""
from __future__ import annotations

import logging
import random
import threading
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Callable

from runtime import deadlines, harmony, prompt as prompts, protocol, session_access
from runtime.actions import ActionCalls, NpcAction
from runtime.context_fit import REPLY_HEADROOM_TOKENS, reply_reserve
from runtime.confidence import Confidence
from runtime.conversations import Conversation, common_prefix
from runtime.errors import BadRequest, SessionEvicted
from runtime.harmony import ANALYSIS, FINAL, Turn
from runtime.requests import ReplyRequest
from runtime.sampler import Sampler
from runtime.session import KvCache
from runtime.session_blob import MAX_TURNS
from runtime.speech import Speech

# How a reply ends when the model ends its answer itself; any other end stops it early.
NATURAL_ENDS = ("return", "end", "endoftext")

if TYPE_CHECKING:
    from runtime.engine import Engine

log = logging.getLogger(__name__)

# What a reply reports: FinalDelta, NpcAction, ReplyResult, or the exception that ended it.
Sink = Callable[[Any], None]


def _spoken(line: str) -> str:
    """A profile's line as the game gets any reply text: no control characters (the profile check refuses them;
    an Npc made in code is not checked), no surrounding whitespace."""
    return protocol.speakable(line).strip(protocol.REPLY_WHITESPACE)


@dataclass(frozen=True)
class FinalDelta:
    text: str


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
    finish_reason: str  # return, end, length, deadline, cancelled, fallback, unsure
    input_truncated: bool
    dropped_turns: int
    unspoken_chars: int = 0  # of an unfinished sentence left unsaid when the reply stopped early
    # the lowest probability of a token the analysis message chose (runtime/confidence.py); None: no analysis
    confidence: float | None = None

    def to_dict(self) -> dict[str, Any]:
        """As the wire carries it: the float fields always msgpack floats (a client in a typed language maps
        them to one type), the counts always ints (docs/protocol.md)."""
        out = dict(self.__dict__)
        for name in _FLOAT_STATS:
            if out[name] is not None:
                out[name] = float(out[name])
        for name in _INT_STATS:
            out[name] = int(out[name])
        return out


_FLOAT_STATS = ("ttft_ms", "total_ms", "prefill_ms", "decode_tok_s", "deadline_ms", "confidence")
_INT_STATS = ("prompt_tokens", "reused_tokens", "reasoning_tokens", "final_tokens", "reasoning_budget",
              "dropped_turns", "unspoken_chars")


@dataclass(frozen=True)
class ReplyResult:
    text: str
    stats: ReplyStats
    reasoning: str  # hidden chain of thought: for designers' debug logs, never for players
    actions: tuple[NpcAction, ...] = ()
    tokens: tuple[int, ...] = ()  # every id after the prompt, sampled or injected, stop token included
    session_token: str | None = None  # the session's (runtime/session_access.py); None for a one-off


class Reply:
    def __init__(self, engine: "Engine", req: ReplyRequest, cancel: threading.Event, sink: Sink):
        if not req.resolved:
            raise ValueError("resolve the request's NPC defaults first (ReplyRequest.with_npc_defaults)")
        if not isinstance(req.text, str) or not req.text.strip():
            raise BadRequest("'text' must be a non-empty string")
        self.e, self.req, self.cancel, self.sink = engine, req, cancel, sink
        self.npc = engine.npc(req.npc)
        self.tok = engine.tok
        self.force_len = engine.fit.force_len  # tokens that close the reasoning and open the final channel
        self.reserve = reply_reserve(self.npc, self.force_len)
        self.clock = deadlines.ReplyClock(engine.cost, req.deadline_ms, req.received_at, self.force_len,
                                          self.npc.expected_final_tokens)
        self.conv: Conversation | None = None
        self.prompt: prompts.Prompt | None = None
        self.plan: deadlines.Plan | None = None
        self.reused = 0
        self.prefix_to_run = 0  # the first ids of its prompt that are its NPC's prefix, not kept (begin)
        self.tokens: list[int] = []  # what this reply's KV holds: the prompt, then every token run
        self.generated: list[int] = []  # every id after the prompt, sampled or injected
        self._fed: list[int] = []  # ids handed to the driver, not yet confirmed run
        self.parser = harmony.HarmonyParser(self.tok, in_header=True)
        self.sampler = Sampler(req.sampling)
        self.calls = ActionCalls(self.npc, req.request_id)
        self.reasoning: list[str] = []
        self.speech = Speech(req.stream_unit)
        self.final: list[str] = []  # what was said (sent as deltas)
        self.unspoken_chars = 0
        self.n_reasoning = self.n_final = 0
        self.ttft: float | None = None
        self.forced = self.cut = False
        self._header: list[int] = []  # the final channel's header run with the prompt, until the first decision
        self.confidence = Confidence()
        self.finish_reason = ""
        self.new_session = False  # this reply makes its session
        self.prefill_ms = 0.0
        self._prefill_started = self._decode_started = 0.0
        self._decode_s = 0.0
        on_device = engine.options.sample_from_candidates
        self.sample_from_candidates = engine.session.device != "cpu" if on_device is None else on_device

    # ---- what the driver reads -----------------------------------------------------------------

    @property
    def cache(self) -> KvCache:
        """The conversation's own cache: the prompt's KV (row 0) before the reply joins a batch, and its
        whole KV after it leaves."""
        return self.conv.cache

    @property
    def kv_tokens(self) -> int:
        return len(self.tokens)

    @property
    def conversation(self) -> tuple[str, str | None]:
        return self.req.conversation

    def slack_ms(self) -> float:
        return self.clock.slack_ms()

    # ---- the contract ---------------------------------------------------------------------------

    def begin(self, give_up: str | None = None, chunk: int | None = None) -> list[int] | None:
        """Check the session, build the prompt and plan the reply: the ids to prefill, or None when it
        ended at once with its fallback line (no time for a minimal answer, or `give_up`: why the
        scheduler says so for a reply the queue held too long). `chunk`: replies are live, and its prompt
        runs that many tokens at a time between their decode steps."""
        e, npc, sid = self.e, self.npc, self.req.session_id
        if sid:
            token = self.req.session_token if self.req.from_wire else session_access.TRUSTED
            session_access.check(e.store.owner(npc.id, sid), npc.id, sid, token, self.req.client_key)
        conv = e.store.get(npc.id, sid) if sid else None  # a one-off reply shares nothing, is stored nowhere
        if sid and conv is None and (npc.id, sid) in e.store.evicted:
            raise SessionEvicted(f"session {sid!r} of {npc.id!r} was evicted to stay within the server's session "
                                 "limit; import it from the game's save (import_session) or reset_session to "
                                 "start over")
        self.new_session = bool(sid) and conv is None
        conv = self.conv = conv or Conversation(npc.id, sid or None,
                                                owner=session_access.Owner.new(self.req.client_key, self.req.session_token)
                                                if sid else None)
        prompt = self.prompt = prompts.build(self.tok, npc, self.req, list(conv.history), e.session.max_context,
                                             self.reserve)
        reuse = common_prefix(conv.tokens, prompt.ids) if conv.cache is not None else 0
        reuse = min(reuse, len(prompt.ids) - 1)  # at least one token must run to produce logits
        reuse = e.reusable(conv, reuse)
        # the NPC's prefix, when its KV is not kept, runs as the start of the prompt (Engine.prepare_cache)
        cold = e.cold_prefix_tokens(npc) if reuse < prompt.prefix_len else 0
        plan = self.plan = deadlines.Plan(0, True, give_up) if give_up else deadlines.plan(
            e.cost, self.clock.slack_ms(), len(prompt.ids) - max(reuse, prompt.prefix_len) + cold, self.force_len,
            npc.expected_final_tokens, npc.max_reasoning_tokens, chunk)
        if plan.fallback:
            log.info("request %s: fallback (%s)", protocol.loggable(self.req.request_id), plan.reason)
            self.reused = reuse
            self.finish_reason = "fallback"
            self._end_with_fallback()
            if cold and not give_up:  # said in time; now the prefix runs, or this NPC would fall back for ever
                e.prefixes.ask(e.prefix_key(npc))
            return None
        conv.busy = True  # until its report or abandon: the store leaves its KV alone
        self.reused = e.prepare_cache(conv, prompt.ids, e.prefix_key(npc), self.reserve, reuse)
        self.prefix_to_run = max(prompt.prefix_len - self.reused, 0)  # its driver calls prefix_ran() after them
        self.tokens = list(prompt.ids[:self.reused])
        self._fed = list(prompt.ids[self.reused:])
        if plan.reasoning_tokens == 0:  # it answers at once: the final channel's header runs with the prompt
            self._header = self._final_header()
            self._fed += self._header
        self._prefill_started = time.perf_counter()
        return list(self._fed)

    def prefix_ran(self) -> None:
        """Its driver ran the first `prefix_to_run` ids handed out: the cache holds the NPC's prefix, and
        nothing after it, so the engine keeps a copy for the NPC's next replies."""
        try:
            self.e.prefixes.keep_from(self.e.prefix_key(self.npc), self.cache)
        except Exception:  # noqa: BLE001 - only a head start for the next reply, which runs it again
            log.warning("an NPC prefix (%d tokens) could not be kept", self.prompt.prefix_len, exc_info=True)

    def prefix_stopped(self, left: int) -> None:
        """Its driver stopped it (cancelled, out of time) with `left` of the prefix's ids not run: the engine
        runs the rest soon, between decode steps, from what its cache holds, so the NPC's next reply does not
        start from nothing again (under steady load, an NPC fell back on every line)."""
        try:
            self.e.prefixes.ask(self.e.prefix_key(self.npc), self.cache, self.reused + self.prefix_to_run - left)
        except Exception:  # noqa: BLE001 - only a head start for the next reply, which runs it again
            log.warning("an NPC prefix (%d tokens) could not be kept", self.prompt.prefix_len, exc_info=True)

    @property
    def header_with_prompt(self) -> bool:
        """Its plan answers at once: the final channel's header runs with (is part of) its prompt."""
        return bool(self._header)

    def next_ids(self, out, row: int) -> list[int]:
        """`out` holds the logits after the last id handed out (at `row`): the ids to run next (several
        when they are not chosen, such as the final channel's header; the logits after the last count),
        or [] when the reply is done with the model."""
        self.tokens.extend(self._fed)
        self._fed = []
        if not self._decode_started:
            self._decode_started = time.perf_counter()
            self.prefill_ms = (self._decode_started - self._prefill_started) * 1000
            self.conv.tokens = list(self.tokens)  # the prompt (and a header run with it)
            self.e.snapshot_window(self.conv)  # the prompt's end: where the next turn goes back to
        ids = self._decide(out, row)
        self._fed = list(ids)
        if not ids:
            self._decode_s = time.perf_counter() - self._decode_started
        return ids

    def keep_kv(self, pool: KvCache, row: int) -> None:
        """Its driver is done with it: take its KV from `row` of the driver's pool into its own cache."""
        n = self.kv_tokens
        if self.conv.cache is None or self.conv.cache.length < n:
            self.conv.cache = self.e.cache_for(n)
        self.conv.cache.copy_rows_from(pool, n, src_row=row, dst_row=0)

    def finish(self) -> None:
        """The reply left the model: keep its KV for the next turn, and report the result. What is
        still unsaid is said if the model ended its answer, or if it ends a sentence; an unfinished
        sentence of a reply stopped early is left out."""
        self.conv.tokens = list(self.tokens)
        if self.finish_reason == "unsure":
            lines = self.npc.unsure_lines or self.npc.fallback_lines
            # greedy replies are the same every time, unsure ones too; sampled ones draw with the reply's seed
            greedy = self.sampler.params.temperature == 0
            line = _spoken(lines[0] if greedy else lines[int(self.sampler.rng.integers(len(lines)))])
            self._say(line)
            self._report(line, fallback=not self.npc.unsure_lines)
            return
        if self.finish_reason in NATURAL_ENDS:
            self._say(self.speech.finished())
        elif self.finish_reason != "cancelled":
            said, self.unspoken_chars = self.speech.cut()
            self._say(said)
        text = "".join(self.final).strip(protocol.REPLY_WHITESPACE)
        if not text and self.finish_reason != "cancelled":  # also after whitespace-only deltas
            self._end_with_fallback()
            return
        self._report(text, fallback=False)

    def stop_before_decode(self, reason: str) -> None:
        """Cancelled, or out of time, while its prompt was still being prefilled: nothing was said, so a
        late one says its fallback line; the conversation keeps only the KV it had before."""
        self.finish_reason = reason
        self.finish()

    def abandon(self, exc: BaseException) -> None:
        """The model run failed: the KV may hold garbage, so the conversation keeps none of it."""
        if self.conv is not None:
            self.conv.drop_kv()
            self.conv.busy = False
        self.sink(exc)

    # ---- the decode loop, one decision per call ----------------------------------------------

    def _fits(self, n: int) -> bool:
        """Whether n more tokens stay within the rows this reply was admitted with."""
        return len(self.tokens) + n <= len(self.prompt.ids) + self.reserve

    def _stop(self, reason: str) -> list[int]:
        self.finish_reason = reason
        return []

    def _decide(self, out, row: int) -> list[int]:
        npc, clock, parser = self.npc, self.clock, self.parser
        if self.cancel.is_set():
            return self._stop("cancelled")
        if self._header:  # it ran with the prompt; it joins the reply if a minimal answer still fits
            header, self._header = self._header, []
            if not clock.minimal_answer_fits(header_ran=True):
                return self._stop("deadline")  # the fallback line goes out in time instead
            self._enter_final(header)
        hard_cap = npc.max_reasoning_tokens + npc.max_final_tokens + REPLY_HEADROOM_TOKENS // 2
        if parser.channel == FINAL:
            if not (self.final or self.speech.pending) and self.confidence.unsure(npc.min_confidence):
                return self._stop("unsure")  # before a word of the answer: its unsure line instead
            if self.n_final >= npc.max_final_tokens:
                return self._stop("length")
            if not clock.another_final_step_fits():
                return self._stop("deadline")
        elif not self.forced:
            if not clock.minimal_answer_fits():
                return self._stop("deadline")  # the fallback line goes out in time instead
            if (self.n_reasoning >= self.plan.reasoning_tokens or clock.must_answer_now()
                    or self.n_reasoning + self.n_final >= hard_cap):
                ids = self._final_header()
                if not self._fits(len(ids)):
                    return self._stop("length")
                self._enter_final(ids)
                return ids
        elif self.n_reasoning + self.n_final >= hard_cap:
            return self._stop("length")

        token = self.sampler.from_step(out, row, prefer_candidates=self.sample_from_candidates)
        self.generated.append(token)
        if parser.channel == FINAL:
            self.n_final += 1
        else:
            self.n_reasoning += 1
            if parser.channel == ANALYSIS:  # what it reasoned, not headers or a tool call's arguments
                self.confidence.chose(out, row, token)
        done = self._parse(token)
        if done and (self.final or self.speech.pending or parser.done):
            return self._stop(done)
        if parser.done:
            return self._stop(done or "return")
        if not self._fits(1):
            return self._stop("length")
        if parser.between_messages and token == self.tok.ids.get("<|call|>"):
            ack = self.calls.acknowledgement(self.tok)
            if not self._fits(1 + len(ack)):
                return self._stop("length")
            self.generated.extend(ack)
            parser.reopen_assistant()
            return [token, *ack]
        return [token]

    def _final_header(self) -> list[int]:
        """The tokens that end the reasoning here and open the final channel."""
        return harmony.force_final(self.tok, in_message=self.parser.in_message,
                                   at_message_start=self.parser.at_message_start)

    def _enter_final(self, ids: list[int]) -> None:
        """The engine's final-channel header `ids` is part of the reply: the model writes the answer now."""
        self.generated.extend(ids)
        self.parser.open_final()
        self.forced = self.cut = True

    def _parse(self, token: int) -> str | None:
        """Feed the parser; stream final text and actions to the sink. The finish reason when the final
        message or the whole reply ended."""
        done = None
        for ev in self.parser.feed(token):
            if isinstance(ev, harmony.TextDelta):
                if ev.channel != FINAL:
                    self.reasoning.append(ev.text)
                    continue
                for unit in self.speech.add(protocol.speakable(ev.text)):
                    self._say(unit)
            elif isinstance(ev, harmony.MessageEnd):
                if ev.channel == FINAL:
                    done = "return" if ev.how == "return" else "end"
                elif ev.how == "call":
                    action = self.calls.on_call(ev)
                    if action is not None:
                        self.sink(action)
            elif isinstance(ev, harmony.Done):
                done = done or ev.reason
        return done

    def _say(self, text: str) -> None:
        """Send a unit of the answer to the game."""
        if not text:
            return
        if self.ttft is None:
            self.ttft = round(self.clock.elapsed_ms(), 2)
        self.final.append(text)
        self.sink(FinalDelta(text))

    # ---- the end ----------------------------------------------------------------------------------

    def _end_with_fallback(self) -> None:
        text = _spoken(random.choice(self.npc.fallback_lines))
        self._say(text)  # its arrival is the reply's first final text (ttft_ms), as a model's sentence's is
        self._report(text, fallback=True)

    def _report(self, text: str, fallback: bool) -> None:
        """Remember the turn (unless cancelled) and report what happened."""
        close = getattr(self.cancel, "close", None)  # a CancelFlag; the Python API may pass a bare Event
        if self.finish_reason != "cancelled" and close is not None and not close():
            self.finish_reason = "cancelled"  # a cancel came after its last step, before its end
        conv, prompt, finish = self.conv, self.prompt, self.finish_reason
        if conv is not None:
            conv.busy = False
        if self.req.session_id:
            if finish != "cancelled":
                conv.history = (prompt.history + [Turn(prompt.user_text, text)])[-MAX_TURNS:]
                conv.holder = self.req.holder  # the client that used it last counts it in its share of the limit
            if finish != "cancelled" or not self.new_session:  # a session's maker learns its token, or it is not made
                self.e.store.put(conv)
        total = self.clock.elapsed_ms()
        generated = self.n_reasoning + self.n_final
        stats = ReplyStats(
            request_id=self.req.request_id, npc=self.npc.id, prompt_tokens=len(prompt.ids),
            reused_tokens=self.reused, reasoning_tokens=self.n_reasoning, final_tokens=self.n_final,
            ttft_ms=round(total, 2) if finish == "fallback" else self.ttft, total_ms=round(total, 2),
            prefill_ms=round(self.prefill_ms, 2),
            decode_tok_s=round(generated / self._decode_s, 1) if self._decode_s > 0 and generated else 0.0,
            reasoning_budget=self.plan.reasoning_tokens, reasoning_cut=self.cut, fallback_used=fallback,
            deadline_ms=self.req.deadline_ms, deadline_met=deadlines.met(total, self.req.deadline_ms), finish_reason=finish,
            input_truncated=prompt.input_truncated, dropped_turns=prompt.dropped_turns,
            unspoken_chars=self.unspoken_chars, confidence=self.confidence.lowest())
        self.sink(ReplyResult(text, stats, "".join(self.reasoning), tuple(self.calls.actions),
                              tuple(self.generated), conv.owner.token if conv.owner else None))
