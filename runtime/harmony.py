"""The harmony chat format: render NPC conversations to token ids, parse the model's output as it streams.

A message is `<|start|>{role}<|channel|>{channel}<|message|>{text}<|end|>`. The assistant
thinks in `analysis` (never shown to players), calls tools in `commentary` (`to=functions.NAME`,
ending `<|call|>`), and answers in `final` (ending `<|return|>`). History keeps only final answers.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from runtime.tokenizer import HarmonyTokenizer

FINAL, ANALYSIS, COMMENTARY = "final", "analysis", "commentary"
MAX_HEADER_TOKENS = 48  # a longer header is junk, not a header


@dataclass(frozen=True)
class Turn:
    """One earlier exchange as harmony keeps it: the player's line and the NPC's final answer."""
    user: str
    reply: str


def message(tok: HarmonyTokenizer, role: str, text: str, channel: str | None = None,
            end: str = "<|end|>") -> list[int]:
    ids = [tok.special("<|start|>")] + tok.text(role)
    if channel:
        ids += [tok.special("<|channel|>")] + tok.text(channel)
    return ids + [tok.special("<|message|>")] + tok.text(text) + [tok.special(end)]


def system_text(effort: str, world: str = "") -> str:
    intro = world or "You are a character in a video game. Stay in character."
    return (f"{intro}\nReasoning: {effort}\n\n"
            "# Valid channels: analysis, commentary, final. Channel must be included for every message.")


def render_prefix(tok: HarmonyTokenizer, system: str, developer: str) -> list[int]:
    """The part that is the same on every request to an NPC: its KV is computed once."""
    return message(tok, "system", system) + message(tok, "developer", developer)


def render_history(tok: HarmonyTokenizer, history: list[Turn]) -> list[int]:
    ids: list[int] = []
    for turn in history:
        ids += message(tok, "user", turn.user) + message(tok, "assistant", turn.reply, FINAL)
    return ids


def assistant_open(tok: HarmonyTokenizer) -> list[int]:
    return [tok.special("<|start|>")] + tok.text("assistant")


def force_final(tok: HarmonyTokenizer, in_message: bool, at_message_start: bool = False) -> list[int]:
    """Tokens that close whatever the model was writing and open the final channel. Right after
    `<|start|>assistant` (nothing of the header written yet) only the channel is needed: the same tokens
    a model trained to answer at once writes itself (export/dataset.py)."""
    channel = [tok.special("<|channel|>")] + tok.text(FINAL) + [tok.special("<|message|>")]
    if at_message_start:
        return channel
    close = [tok.special("<|end|>")] if in_message else []
    return close + assistant_open(tok) + channel


# ---- streaming parser -------------------------------------------------------------------------

@dataclass(frozen=True)
class TextDelta:
    channel: str
    text: str


@dataclass(frozen=True)
class MessageEnd:
    channel: str
    text: str
    recipient: str | None
    how: str  # "end", "call", "return", "interrupted"


@dataclass(frozen=True)
class Done:
    reason: str  # "return" or "endoftext"


@dataclass
class _Message:
    channel: str
    recipient: str | None
    ids: list[int] = field(default_factory=list)
    emitted: str = ""


class HarmonyParser:
    """Feeds on token ids; never raises, whatever the sequence.

    Unknown or missing channels are treated as hidden (analysis): only a message whose
    header says exactly `final` can reach a player.
    """

    def __init__(self, tok: HarmonyTokenizer, in_header: bool = True):
        self.tok = tok
        ids = tok.ids
        self.START, self.END, self.MESSAGE = ids["<|start|>"], ids["<|end|>"], ids["<|message|>"]
        self.CHANNEL, self.RETURN = ids["<|channel|>"], ids["<|return|>"]
        self.CALL, self.EOT = ids.get("<|call|>", -1), ids.get("<|endoftext|>", -1)
        self.state = "header" if in_header else "idle"
        self.header: list[int] = []
        self.msg: _Message | None = None
        self.done = False

    @property
    def channel(self) -> str | None:
        """The channel of the message being written, if any."""
        return self.msg.channel if self.state == "body" and self.msg else None

    @property
    def between_messages(self) -> bool:
        """A message just ended (<|end|> or <|call|>) and no new one has started."""
        return self.state == "idle"

    @property
    def at_message_start(self) -> bool:
        """Right after `<|start|>assistant`: the header has not begun."""
        return self.state == "header" and not self.header

    @property
    def in_message(self) -> bool:
        """Inside a message's header or body (force_final must close it first)."""
        return self.state in ("header", "body")

    def open_final(self) -> None:
        """The engine injected force_final(): the model now writes the final channel."""
        self.state, self.header, self.msg = "body", [], _Message(FINAL, None)

    def reopen_assistant(self) -> None:
        """The engine answered an action call and opened a new assistant message (`<|start|>assistant`):
        the model now writes that message's header."""
        self.state, self.header, self.msg = "header", [], None

    def feed(self, token: int) -> list:
        if self.done:
            return []
        events: list = []
        if self.state == "body":
            self._body(token, events)
        elif self.state == "header":
            self._header(token, events)
        else:
            self._idle(token, events)
        return events

    def _idle(self, token: int, events: list) -> None:
        if token == self.START:
            self.state, self.header = "header", []
        elif token in (self.RETURN, self.EOT):
            self._finish(events, "return" if token == self.RETURN else "endoftext")
        # anything else between messages is junk: ignored

    def _header(self, token: int, events: list) -> None:
        if token == self.MESSAGE:
            channel, recipient = self._parse_header()
            self.state, self.msg = "body", _Message(channel, recipient)
        elif token == self.START:
            self.header = []
        elif token == self.END:
            self.state = "idle"
        elif token in (self.RETURN, self.EOT):
            self._finish(events, "return" if token == self.RETURN else "endoftext")
        elif len(self.header) >= MAX_HEADER_TOKENS:
            self.state = "idle"  # junk; wait for the next <|start|>
        else:
            self.header.append(token)

    def _parse_header(self) -> tuple[str, str | None]:
        before: list[int] = []
        after: list[int] | None = None
        for t in self.header:
            if t == self.CHANNEL:
                after = []
            elif t not in self.tok.special_ids:
                (before if after is None else after).append(t)
        head = self.tok.decode_text(before)
        chan = self.tok.decode_text(after) if after is not None else ""
        words = chan.split()
        channel = words[0] if words and words[0] in (FINAL, ANALYSIS, COMMENTARY) else ANALYSIS
        recipient = None
        for word in (head + " " + chan).split():
            if word.startswith("to="):
                recipient = word[3:]
        if recipient is not None and channel == FINAL:
            channel = COMMENTARY  # a message to a tool is a call, never speech: its arguments are not a line
        return channel, recipient

    def _body(self, token: int, events: list) -> None:
        msg = self.msg
        if token == self.END:
            self._close(events, "end")
            self.state = "idle"
        elif token == self.CALL:
            self._close(events, "call")
            self.state = "idle"
        elif token in (self.RETURN, self.EOT):
            self._close(events, "return")
            self._finish(events, "return" if token == self.RETURN else "endoftext")
        elif token == self.START:  # the model forgot <|end|>
            self._close(events, "interrupted")
            self.state, self.header = "header", []
        elif token in self.tok.special_ids:
            pass  # stray structure tokens inside a body carry no text
        else:
            msg.ids.append(token)
            text = self.tok.decode_text(msg.ids)
            if text.endswith("\ufffd"):
                return  # an incomplete UTF-8 sequence: wait for the next token
            delta = text[len(msg.emitted):] if text.startswith(msg.emitted) else ""
            msg.emitted = text
            if delta:
                events.append(TextDelta(msg.channel, delta))

    def _close(self, events: list, how: str) -> None:
        msg = self.msg
        text = self.tok.decode_text(msg.ids)
        if text.startswith(msg.emitted) and len(text) > len(msg.emitted):
            events.append(TextDelta(msg.channel, text[len(msg.emitted):]))
            msg.emitted = text
        # the message's text is exactly what was streamed, so deltas always add up to it
        events.append(MessageEnd(msg.channel, msg.emitted, msg.recipient, how))
        self.msg = None

    def _finish(self, events: list, reason: str) -> None:
        self.done, self.state = True, "done"
        events.append(Done(reason))
