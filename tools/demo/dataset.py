"""Synthetic NPC conversations, rendered for training by `parley dataset`'s own renderer
(export/dataset.py), which renders prompts with the runtime's code: the demo model is the first user
of the path studios fine-tune with.

A conversation: the NPC's prefix (system + developer, from its profile), earlier turns (final answers
only), the player's line, then the assistant's analysis (brief reasoning), an optional action call,
and the final answer. Only the assistant's own tokens are trained on.
"""
from __future__ import annotations

import json
import random
import re
from dataclasses import dataclass
from pathlib import Path

from runtime import dialogues
from export.dataset import Rendered, render
from runtime.prompt import user_content as prompt_user_content
from runtime.requests import ReplyRequest
from runtime.npc import ActionSpec, Npc
from runtime.profiles import parse_profile
from tools.demo import freeform_dev_o, near_miss, told_first
from tools.demo import (freeform, freeform_blind, freeform_blind_c, freeform_blind_d, freeform_blind_e,
                        freeform_blind_f, freeform_blind_g, freeform_blind_h, freeform_blind_i, freeform_blind_j,
                        freeform_blind_k, freeform_blind_l, freeform_blind_m, freeform_blind_n, lexicon, phrasing, player_bank,
                        player_talk)
from tools.demo.facts import HELD_OUT_SETS, QUESTIONS, SHIPPED, TRADES, DemoNpc, Fact, random_npc

PROFILES = Path(__file__).resolve().parents[2] / "npc_profiles"
ACTION_REQUESTS = {"open_shop": ["Show me your wares.", "What do you have for sale?", "Let me see what you sell."],
                   "rent_room": ["I'd like a room for the night.", "Can I rent a room?", "A bed for tonight, please."],
                   "open_gate": ["Open the gate, I have a writ.", "Let me through, here is my writ."]}
ACTION_ARGS = {"open_shop": "{}", "rent_room": '{"nights": 1}', "open_gate": '{"reason": "writ"}'}
ACTION_FINAL = {"open_shop": "Have a look, {address}.", "rent_room": "Your room is upstairs, {address}. 8 silver.",
                "open_gate": "Open the gate! Pass, {address}."}


@dataclass(frozen=True)
class Reply:
    analysis: str
    final: str
    action: str | None = None


# The context the demo model is exported with (tools/demo/evaluate.py): prompts are cut to it as served.
MAX_CONTEXT = 2048


@dataclass(frozen=True)
class Example:
    npc: Npc
    history: tuple[dialogues.Turn, ...]
    say: str  # the player's line
    reply: Reply
    key: str | None  # for fact questions: what the final answer must contain
    state: tuple[tuple[str, str], ...] = ()  # game state sent with the line

    @property
    def user(self) -> str:
        """The user message as the engine renders it (for checks on the text)."""
        return prompt_user_content(ReplyRequest(npc=self.npc.id, text=self.say, game_state=dict(self.state)), self.say)

    def as_dialogue(self) -> dialogues.Example:
        """The example as a designer would write it in a dialogue file."""
        r = self.reply
        return dialogues.Example(npc=self.npc.id, say=self.say, reply=r.final, reasoning=r.analysis,
                                 state=self.state, action=r.action or "",
                                 action_args=tuple(sorted(json.loads(ACTION_ARGS.get(r.action, "{}")).items()))
                                 if r.action else (), history=self.history)


def npc_from_demo(d: DemoNpc) -> Npc:
    """Training-only NPCs get a profile built the same way a designer would write one."""
    return Npc(id=d.id, name=d.name, persona=d.persona, knowledge=tuple(dict.fromkeys(f.sentence for f in d.facts)),
               style=d.style, sample_lines=d.sample_lines, reasoning_effort=d.effort,
               fallback_lines=("One moment.",),
               actions=tuple(ActionSpec(n, desc, {"type": "object"}) for n, desc in d.actions))


def shipped_npcs() -> dict[str, tuple[DemoNpc, Npc]]:
    return {d.id: (d, parse_profile(PROFILES / f"{d.id}.toml")) for d in SHIPPED}


def articles(text: str) -> str:
    """'a iron sword' -> 'an iron sword'."""
    return re.sub(r"\b([Aa]) ([aeiouAEIOU])", lambda m: f"{m.group(1)}n {m.group(2)}", text)


HELD_OUT = {articles(t.format(**f.slots)) for d in SHIPPED for f in d.facts
            for templates in HELD_OUT_SETS.values() for t in templates(f.topic)}


def question(fact: Fact, rng: random.Random, held_out: bool) -> str:
    train, held = QUESTIONS[fact.topic]
    if held_out:
        return articles(rng.choice(held).format(**fact.slots))
    if rng.random() < 0.3:
        return articles(rng.choice(train).format(**fact.slots))
    return phrasing.phrase(fact.topic, rng, HELD_OUT, articles, **fact.slots)


def _topic_words(fact: Fact) -> str:
    if fact.slots:
        return f"{fact.topic} of the {next(iter(fact.slots.values()))}"
    return {"rumour": "rumours", "food": "the food", "job": "work"}.get(fact.topic, fact.topic)


def answer(d: DemoNpc, fact: Fact, rng: random.Random, address: bool = True) -> str:
    if not address:
        sentence = answer(d, fact, rng)
        return re.sub(rf", {re.escape(d.address)}\.$", ".", sentence)
    if fact.topic == "price":
        item = fact.slots["item"]
        return articles(rng.choice([f"A {item} is {fact.key}, {d.address}.", f"That'll be {fact.key} for a {item}, {d.address}.",
                           f"{fact.key[0].upper() + fact.key[1:]} for a {item}, {d.address}."]))
    sentence = re.sub(r"^(Her|Their) ", "My ", fact.sentence)  # the NPC speaks of its own people
    return rng.choice([f"{sentence}", f"{sentence[:-1]}, {d.address}."])


def reasoning(effort: str, what: str, known: str | None, style: str) -> str:
    parts = [f"They ask about {what}."]
    if known:
        parts.append(f"I know: {known}")
    if effort in ("medium", "high"):
        parts.append("Answer briefly, in my own voice.")
    if effort == "high":
        parts.append(f"My style: {style}")
    return " ".join(parts)


def words_for(d: DemoNpc, fact: Fact) -> lexicon.Words:
    """What players call a fact's thing and ask about it: the lexicon's words for a shipped fact, generic ones
    for a training-only NPC's."""
    if (d.id, fact.label) in lexicon.SHIPPED_WORDS:
        return lexicon.SHIPPED_WORDS[d.id, fact.label]
    if fact.topic == "rumour":
        return lexicon.Words(cues=next((c for s, _, c in lexicon.RUMOURS if s == fact.sentence), ()))
    if fact.topic == "person":
        return lexicon.Words(names=(fact.slots["person"], f"your {fact.sentence.split()[1]}"))
    return lexicon.Words()


def ask_about(d: DemoNpc, fact: Fact, rng: random.Random, held_out: bool) -> str:
    """A question about one fact: the template grammar's, or one composed the way players type."""
    if held_out:
        return question(fact, rng, held_out)
    if rng.random() < 0.35:
        return _unheld(lambda: question(fact, rng, False))
    return _unheld(lambda: player_talk.question(fact.topic, fact.slots, words_for(d, fact), rng, d.address))


def normal(text: str) -> str:
    """A line as the free-form sets are compared with training data: lower case, letters, digits and
    single spaces only."""
    return " ".join("".join(c for c in text.lower() if c.isalnum() or c.isspace()).split())


# The free-form yardsticks' lines (tools/demo/freeform.py, freeform_blind*.py) never occur in the training data,
# whatever the generator happens to compose.
YARDSTICKS = (freeform.LINES + freeform_blind.LINES + freeform_blind_c.LINES + freeform_blind_d.LINES
              + freeform_blind_e.LINES + freeform_blind_f.LINES + freeform_blind_g.LINES + freeform_blind_h.LINES
              + freeform_blind_i.LINES + freeform_blind_j.LINES + freeform_blind_k.LINES + freeform_blind_l.LINES
              + freeform_blind_m.LINES + freeform_blind_n.LINES
              + freeform_blind_g.WITHDRAWN)
FREE_FORM = {normal(text) for line in YARDSTICKS
             for text in (line.say, line.before) if text}
# Development set O's lines: kept out of the data from version 16 (earlier versions stay as they were trained)
DEV_O = {normal(text) for line in freeform_dev_o.LINES for text in (line.say, line.before) if text}
_BANNED = [held.lower().rstrip("?.!") for held in HELD_OUT]


def holds_held_out(text: str) -> bool:
    """Whether a line contains one of the template test sets' held-out phrasings (in any case)."""
    return any(held in text.lower() for held in _BANNED)


def _unheld(make) -> str:
    """A generated line that contains no held-out phrasing (in any case or punctuation) and is no free-form line."""
    while True:
        text = make()
        if not holds_held_out(text) and normal(text) not in FREE_FORM:
            return text


def fact_reply(d: DemoNpc, npc: Npc, fact: Fact, rng: random.Random, after: str | None = None) -> Reply:
    what = _topic_words(fact) + (f", after asking about {after}" if after else "")
    return Reply(reasoning(npc.reasoning_effort, what, fact.sentence, d.style), answer(d, fact, rng))


def dont_know(d: DemoNpc, npc: Npc, what: str, rng: random.Random, goods: str | None = None) -> Reply:
    """An honest answer to what the NPC does not know or sell, in its own voice, never the nearest fact."""
    if goods:
        thing = goods.removeprefix("some ") if goods.startswith("some ") else player_talk.plural(goods.split(" ", 1)[1])
        final = rng.choice([f"I don't sell {thing}, {d.address}.", f"No {thing} here, {d.address}.",
                            f"You'll not find {thing} with me, {d.address}."])
        known = "I don't sell that."
    else:
        final = rng.choice([f"I couldn't say, {d.address}.", f"That I don't know, {d.address}.",
                            f"Can't help you there, {d.address}.", f"No idea, {d.address}. Ask someone else."])
        known = "I don't know that."
    parts = [f"They ask about {what}.", known]
    if npc.reasoning_effort in ("medium", "high"):
        parts.append("Say so, in my own voice.")
    return Reply(" ".join(parts), final)


def unknown_question(rng: random.Random) -> str:
    """A question no demo NPC can answer: one of the lexicon's, or one composed from its frames."""
    if rng.random() < 0.4:
        return rng.choice(lexicon.UNKNOWABLE)
    return re.sub(r"\{(\w+)\}", lambda m: rng.choice(lexicon.UNKNOWN_SLOTS[m.group(1)]),
                  rng.choice(lexicon.UNKNOWN_FRAMES))


def other_goods(d: DemoNpc) -> list[str]:
    """Goods this NPC does not sell: the lexicon's list and other trades' wares."""
    sold = {f.slots.get("item", "") for f in d.facts}
    wares = [f"a {item}" for _, items in TRADES for item in items if item not in sold]
    return lexicon.OTHER_GOODS + wares


# Data versions, so a checkpoint's training data can be generated again (its training log names the
# version): 1 asked for actions in three fixed phrasings each; 2 composes them and asks a little more often;
# 3 draws the shipped NPCs' questions from people's lines too (tools/demo/player_bank.py), with typos,
# and asks each of them the others' questions; 4 puts something the player tells (about other things)
# before some of their questions, and names a follow-up's thing by comparison ("the better one"); 5 draws
# from two more banks of people's lines (longer, buried and role-played questions, near-miss unknowns),
# more often, and asks unanswerable questions more often; 6 draws from three more banks (one writer per NPC,
# many follow-ups and near-miss unknowns), from people's lines more often, and asks follow-ups twice as often;
# 7 is 6 without the people's follow-ups and two-part lines that hold a held-out template phrasing (17 rows of
# version 6's banks, one of version 5's, such as a follow-up after "What's the reward for a wolf pelt?"; their
# single lines were always filtered), so the template test sets stay unseen; 8 is 7 with follow-ups that ask
# what the NPC does not know (a tenth of all examples' follow-ups had none before: "And a lantern?" after
# a price, "Who saw them?" after a rumour), answered honestly rather than with the fact just discussed; 9 is
# 8 with single questions that name a fact's thing but ask what its fact does not hold ("When will Tomas be
# back?", "How much is a writ?", "A steel axe?" of a smith who sells steel swords; tools/demo/near_miss.py);
# 10 is 9 asking unanswerable questions a third more often, and 60% of them near one of the NPC's facts (40%
# in 9): the eleventh checkpoint's wrong facts were mostly such questions answered with the nearest fact;
# 11 is 10 with people's follow-up and two-part lines checked against the free-form sets after their typos
# too (10 checked them as written, and its "shield price?" came out once as set G's "shild price"), and
# greetings, farewells, insults, off-topic lines and fixed action requests, which no version checked; 12 is
# 11 with a share of player lines shouted in capitals (the demo tokenizer spells capitals letter by letter,
# and earlier versions had them only in a few people's lines, 0.6% of examples: six of the shipped
# checkpoint's 31 wrong facts on sets C to F, unsure replies off, came from those sets' 17 lines in capitals);
# 13 is 12 drawing from three more banks (bank_5*: lines that name one thing and ask another, questions after
# a story, indirect asks, near-miss unknowns: the kinds behind most of the shipped checkpoint's wrong facts on
# sets C to F) and ending in a follow-up a quarter of the time; 14 is 13 ending in a follow-up 35% of the
# time, 40% of them about something the NPC does not know (30% before): the shipped checkpoint, unsure
# replies off, answered 37 of sets C to F's 45 follow-ups right, and four of its five wrong ones answered a
# follow-up about something it does not know with the fact just discussed ("stabling for my horse too?" after
# a room's price); 15 is 14 with a share of composed questions about a thing of a pair (one of several
# prices) that name another of them only to set it aside ("Not the steel one. What's an iron sword?",
# player_talk.CONTRAST): six of the shipped checkpoint's nine wrong facts left on sets C to F at its
# threshold were said with near certainty, one of them the steel sword's price for "the regular sword,
# not the steel one"; 16 is 15 ending in a follow-up 40% of the time, a quarter of the shipped NPCs' follow-ups
# coming after a line that only tells something ("My sword broke clean in two on the road." / "How much to
# mend it?", told_first.py) and one in eight of all asking to hear the last answer again ("Come again?",
# "sunset, you said?"), never a line of development set O: on set O the shipped checkpoint, unsure replies
# off, answered 81 of 101 follow-ups right, and deflected or named the wrong fact after such lines. The one run
# on 16 (the twenty-fifth) did not ship (docs/training.md): the default stays the shipped checkpoint's 15.
DATA_VERSION = 15
KINDS = ("fact", "two", "unknown", "greet", "bye", "insult", "offtopic", "action")
WEIGHTS = {1: (30, 3, 7, 2, 1, 1, 1, 2), 2: (30, 3, 7, 2, 1, 1, 1, 3), 3: (30, 4, 9, 2, 1, 1, 1, 3),
           4: (30, 4, 9, 2, 1, 1, 1, 3), 5: (30, 4, 12, 2, 1, 1, 1, 3),
           6: (30, 4, 12, 2, 1, 1, 1, 3), 7: (30, 4, 12, 2, 1, 1, 1, 3), 8: (30, 4, 12, 2, 1, 1, 1, 3),
           9: (30, 4, 12, 2, 1, 1, 1, 3), 10: (30, 4, 16, 2, 1, 1, 1, 3),
           11: (30, 4, 16, 2, 1, 1, 1, 3), 12: (30, 4, 16, 2, 1, 1, 1, 3),
           13: (30, 4, 16, 2, 1, 1, 1, 3), 14: (30, 4, 16, 2, 1, 1, 1, 3), 15: (30, 4, 16, 2, 1, 1, 1, 3),
           16: (30, 4, 16, 2, 1, 1, 1, 3)}
# of a shipped NPC's questions, the share drawn from people's lines (from version 3)
BANK_SHARE = {3: 0.45, 4: 0.45, 5: 0.6, 6: 0.65, 7: 0.65, 8: 0.65, 9: 0.65, 10: 0.65, 11: 0.65, 12: 0.65, 13: 0.65, 14: 0.65, 15: 0.65, 16: 0.65}
FOLLOW_SHARE = {6: 0.2, 7: 0.2, 8: 0.2, 9: 0.2, 10: 0.2, 11: 0.2, 12: 0.2, 13: 0.25, 14: 0.35, 15: 0.35, 16: 0.4}  # of all examples, the share that ends in a follow-up (0.1 before version 6)
# of the follow-ups, the share asking what the NPC does not know (from version 8)
UNKNOWN_FOLLOW_SHARE = {14: 0.4, 15: 0.4, 16: 0.4}  # 0.3 before version 14
# of the questions an NPC cannot answer, the share asked next to one of its facts (from version 9)
NEAR_MISS_SHARE = {9: 0.4, 10: 0.6, 11: 0.6, 12: 0.6, 13: 0.6, 14: 0.6, 15: 0.6, 16: 0.6}
SHOUT_SHARE = 0.06  # from version 12: of the player lines of training examples, the share shouted in capitals
CONTRAST_SHARE = 0.2  # from version 15: of composed questions about one of several prices, the share setting another aside
AGAIN_SHARE = 0.12  # from version 16: of follow-ups that know an answer, the share asking to hear the last one again
TOLD_SHARE = 0.25  # from version 16: of the shipped NPCs' follow-ups that know an answer, the share after a line that told
# Follow-ups whose answer no fact of that topic holds (the fact's sentence says nothing of it).
DETAIL_UNKNOWN = {
    "hours": ["And on feast days?", "Same in winter?", "what about holy days", "And on market day?"],
    "rumour": ["Who saw it?", "Who told you that?", "how do you know that", "Did anyone go and look?",
               "Who says so?"],
    "person": ["When will they be back?", "When are they back?", "how long have they been gone", "What are they like?"],
    "rule": ["How long does it take to get one?", "What does one cost?", "can a friend fetch it for me"],
    "food": ["And tomorrow?", "what's cooking tomorrow then", "Any bread with it?"],
    "job": ["How long's the job?", "When does it start?", "How many do they need?", "what's the pay", "Who else is going?"],
}
OTHER_QUARRY = ["a bear pelt", "boar hides", "a fox pelt", "deer hides", "bandits", "a wildcat pelt"]
STORY_SHARE = 0.2  # version 4: of a shipped NPC's questions, the share told after a story


def banked(line: str, rng: random.Random) -> str:
    """A bank line as a player might type it this time: as written, with typos, or in chat-box noise."""
    roll = rng.random()
    if roll < 0.25:
        return player_bank.typos(line, rng)
    if roll < 0.4:
        return player_talk.noise(line, rng)
    return line


def shouted(text: str, rng: random.Random) -> str:
    """A player line in capitals (caps lock, or shouting), now and then with its punctuation dropped or doubled."""
    text = text.upper()
    roll = rng.random()
    if roll < 0.3:
        return text.rstrip("?.!")
    if roll < 0.5:
        return text.rstrip("?.!") + rng.choice(["??", "?!", "!!", "!", "???"])
    return text


def maybe_shouted(text: str, rng: random.Random, version: int) -> str:
    """From version 12, a share of player lines shouted (earlier versions draw nothing, so they regenerate
    byte for byte). Capitals do not change a line's normal form, so a kept-apart line stays apart."""
    if version >= 12 and rng.random() < SHOUT_SHARE:
        return shouted(text, rng)
    return text


def kept_apart(make, version: int) -> str:
    """A line from `make`; from version 11 never a free-form line, on every path (10 and earlier checked most
    paths, and stay as they were trained)."""
    return _unheld(make) if version >= 11 else make()


def bank_typed(line: str, rng: random.Random, version: int) -> str:
    """A people's follow-up or two-part line as typed this time (checked after its typos from version 11)."""
    return kept_apart(lambda: banked(line, rng), version)


def told(d: DemoNpc, text: str, asked: str | None, rng: random.Random, version: int) -> str:
    """A shipped NPC's question, now and then after a story about other things (version 4)."""
    if version < 4 or d.id not in player_bank.load(version=version).unknown or rng.random() >= STORY_SHARE:
        return text
    return _unheld(lambda: player_talk.with_story(text, asked or "", rng))


def from_bank(d: DemoNpc, kind: str, rng: random.Random, version: int, fact: Fact | None = None):
    """A shipped NPC's question from people's lines (version 3 on), or None to compose one."""
    bank = player_bank.load(version=version)
    if d.id not in bank.unknown or rng.random() >= BANK_SHARE[version]:
        return None
    if kind == "fact":
        return _unheld(lambda: banked(rng.choice(bank.facts[d.id, fact.label]), rng))
    if kind == "unknown":
        pool = bank.unknown[d.id] if rng.random() < 0.6 else bank.cross(d.id)
        return _unheld(lambda: banked(rng.choice(pool), rng))
    rows = [r for r in (bank.two_part if kind == "two" else bank.follow_ups) if r[0] == d.id]
    while True:
        row = rng.choice(rows)
        held = version >= 7 and any(holds_held_out(t) for t in row[1:3])
        if all(normal(t) not in FREE_FORM for t in row[1:3]) and not held:
            return row


def one_turn(d: DemoNpc, npc: Npc, rng: random.Random, held_out: bool,
             version: int = DATA_VERSION) -> tuple[str, Reply, str | None]:
    kind = rng.choices(KINDS, WEIGHTS[version])[0]
    if held_out:
        kind = "fact"
    if kind == "action" and npc.actions:
        name = npc.actions[0].name
        if version == 1:
            request = rng.choice(ACTION_REQUESTS.get(name, ["Help me."]))
        else:
            request = (kept_apart(lambda: rng.choice(ACTION_REQUESTS[name]), version)
                       if name in ACTION_REQUESTS and rng.random() < 0.3
                       else _unheld(lambda: player_talk.action_request(name, rng)) if name in player_talk.ACTIONS
                       else "Help me.")
        return (request,
                Reply(reasoning(npc.reasoning_effort, f"using {name}", None, d.style),
                      ACTION_FINAL.get(name, "Done, {address}.").format(address=d.address), name), None)
    if kind == "two" and len(d.facts) > 1:
        first, second = rng.sample(d.facts, 2)
        row = from_bank(d, "two", rng, version) if version >= 3 else None
        if row:
            labels = {f.label: f for f in d.facts}
            first, second = labels[row[2]], labels[row[3]]
        text = bank_typed(row[1], rng, version) if row else _unheld(lambda: player_talk.two_part(*(player_talk.core(f.topic, f.slots, words_for(d, f), rng)
                                                      for f in (first, second)), rng))
        reply = Reply(reasoning(npc.reasoning_effort, f"{_topic_words(first)} and {_topic_words(second)}",
                                f"{first.sentence} {second.sentence}", d.style),
                      f"{answer(d, first, rng, address=False)} {answer(d, second, rng)}")
        return text, reply, first.key
    if kind == "unknown" and version >= 9 and rng.random() < NEAR_MISS_SHARE[version]:
        return near_miss_turn(d, npc, rng)
    if kind == "unknown":
        text = from_bank(d, "unknown", rng, version) if version >= 3 else None
        if text:
            return told(d, text, None, rng, version), dont_know(d, npc, "something I don't know", rng), None
        if rng.random() < 0.5:
            goods = rng.choice(other_goods(d))
            return (_unheld(lambda: player_talk.wrong_item(goods, rng)),
                    dont_know(d, npc, goods.removeprefix("a ").removeprefix("an "), rng, goods), None)
        return (_unheld(lambda: player_talk.unknowable(unknown_question(rng), rng)),
                dont_know(d, npc, "something I don't know", rng), None)
    if kind in ("fact", "two", "action"):
        fact = rng.choice(d.facts)
        text = from_bank(d, "fact", rng, version, fact) if version >= 3 and not held_out else None
        if not text:
            text = ask_about(d, fact, rng, held_out)
            if version >= 15 and not held_out and rng.random() < CONTRAST_SHARE:
                text = set_aside(d, fact, text, rng)
        return told(d, text, fact.label, rng, version) if not held_out else text, fact_reply(d, npc, fact, rng), fact.key
    if kind == "greet":
        return kept_apart(lambda: phrasing.chitchat(phrasing.GREETINGS, rng), version), Reply(reasoning(npc.reasoning_effort, "nothing; a greeting", None, d.style),
                                            d.greeting), None
    if kind == "bye":
        return kept_apart(lambda: phrasing.chitchat(phrasing.FAREWELLS, rng), version), Reply(reasoning(npc.reasoning_effort, "nothing; a farewell", None, d.style),
                                            d.farewell), None
    line = kept_apart(lambda: phrasing.chitchat(phrasing.INSULTS if kind == "insult" else phrasing.OFF_TOPIC, rng), version)
    return line, Reply(reasoning(npc.reasoning_effort, "something I will not discuss", None, d.style), d.refusal), None


def set_aside(d: DemoNpc, fact: Fact, question: str, rng: random.Random) -> str:
    """A question about `fact` that sets another of the NPC's things of its kind aside (version 15); as it was
    when the NPC has no other."""
    others = [f for f in d.facts if f.topic == fact.topic and f is not fact and f.slots]
    if not others:
        return question
    other = rng.choice(others)
    name = re.sub(r"^one ", "", bare(rng.choice(player_talk.names_of(other.topic, other.slots, words_for(d, other)))))
    return _unheld(lambda: player_talk.contrast(question, name, rng))


def follow_up(d: DemoNpc, npc: Npc, rng: random.Random,
              version: int = DATA_VERSION) -> tuple[dialogues.Turn, str, Reply, Fact | None]:
    """An earlier turn about one fact, then a line that only makes sense after it ('And a steel one?'):
    another thing of the same kind, or the same fact asked again without naming it; from version 8 now and
    then something of the same kind the NPC does not know (then no fact: None)."""
    if version >= 8 and rng.random() < UNKNOWN_FOLLOW_SHARE.get(version, 0.3):
        return unknown_follow_up(d, npc, rng)
    if version >= 16 and rng.random() < AGAIN_SHARE:
        return again_follow_up(d, npc, rng)
    if version >= 16 and d.id in told_first.TOLD and rng.random() < TOLD_SHARE:
        return told_follow_up(d, npc, rng)
    row = from_bank(d, "follow", rng, version) if version >= 3 else None
    if row:
        labels = {f.label: f for f in d.facts}
        _, before, text, label, first_label = row
        fact, first = labels[label], labels[first_label]
        earlier = dialogues.Turn(bank_typed(before, rng, version), answer(d, first, rng))
        return earlier, bank_typed(text, rng, version), fact_reply(d, npc, fact, rng, after=_topic_words(first)), fact
    first = rng.choice(d.facts)
    earlier = dialogues.Turn(ask_about(d, first, rng, False), answer(d, first, rng))
    same_kind = [f for f in d.facts if f.topic == first.topic and f is not first and f.slots]
    if same_kind and rng.random() < 0.6:
        fact = rng.choice(same_kind)
        # "the better one" only after the other of a pair (iron and steel), never after a shield
        relative = version >= 4 and rng.random() < 0.3 and (d.id, fact.label) in player_talk.RELATIVE \
            and (d.id, first.label) in player_talk.RELATIVE
        text = _unheld(lambda: player_talk.follow_relative(d.id, fact.label, rng) if relative else
                       player_talk.follow_other(rng.choice(player_talk.names_of(fact.topic, fact.slots,
                                                                                words_for(d, fact))), rng))
    else:
        fact = first
        text = _unheld(lambda: player_talk.follow_same(fact.topic, rng))
    return earlier, text, fact_reply(d, npc, fact, rng, after=_topic_words(first)), fact


def again_follow_up(d: DemoNpc, npc: Npc, rng: random.Random) -> tuple[dialogues.Turn, str, Reply, Fact]:
    """An earlier turn about one fact, then a request to hear it again (version 16): the same fact."""
    fact = rng.choice(d.facts)
    earlier = dialogues.Turn(ask_about(d, fact, rng, False), answer(d, fact, rng))
    text = _unheld(lambda: player_talk.noise(told_first.again(fact.key, rng), rng)
                   if rng.random() < 0.3 else told_first.again(fact.key, rng))
    return earlier, text, fact_reply(d, npc, fact, rng, after=_topic_words(fact)), fact


def told_follow_up(d: DemoNpc, npc: Npc, rng: random.Random) -> tuple[dialogues.Turn, str, Reply, Fact]:
    """A shipped NPC's earlier turn that only told something, then a question about it by reference
    (version 16, told_first.TOLD): the NPC had nodded, or said the fact the telling brought to mind."""
    labels = {f.label: f for f in d.facts}
    statement, questions = rng.choice(told_first.TOLD[d.id])
    question_text, label = rng.choice(questions)
    fact = labels[label]
    said = answer(d, labels[questions[0][1]], rng) if rng.random() < 0.4 else told_first.nod(d.address, rng)
    earlier = dialogues.Turn(_unheld(lambda: banked(statement, rng)), said)
    return earlier, _unheld(lambda: banked(question_text, rng)), fact_reply(d, npc, fact, rng, after=_topic_words(fact)), fact


def bare(goods: str) -> str:
    """Goods without their article ("a steel axe" -> "steel axe")."""
    return re.sub(r"^(a|an|some) ", "", goods)


def unknown_follow_up(d: DemoNpc, npc: Npc, rng: random.Random) -> tuple[dialogues.Turn, str, Reply, None]:
    """An earlier turn about one fact, then a follow-up about something near it that the NPC does not know or
    sell ("And a lantern?" after a sword's price): answered honestly, never with the fact just discussed."""
    first = rng.choice(d.facts)
    earlier = dialogues.Turn(ask_about(d, first, rng, False), answer(d, first, rng))
    after = f", after asking about {_topic_words(first)}"
    if first.topic == "price":
        goods = rng.choice(other_goods(d))
        text = _unheld(lambda: player_talk.follow_other(goods, rng))
        return earlier, text, dont_know(d, npc, bare(goods) + after, rng, goods), None
    if first.topic == "reward":
        text = _unheld(lambda: player_talk.follow_other(rng.choice(OTHER_QUARRY), rng))
    else:
        text = _unheld(lambda: player_talk.noise(rng.choice(DETAIL_UNKNOWN[first.topic]), rng))
    return earlier, text, dont_know(d, npc, "something I don't know" + after, rng), None


def near_miss_turn(d: DemoNpc, npc: Npc, rng: random.Random) -> tuple[str, Reply, None]:
    """A question that names one of the NPC's things but asks what its fact does not hold (version 9):
    goods next to what it sells, or a detail its fact does not say; answered honestly."""
    fact = rng.choice(d.facts)
    if fact.topic == "price":
        goods = rng.choice(near_miss.GOODS.get(d.id) or other_goods(d))
        return _unheld(lambda: player_talk.wrong_item(goods, rng)), dont_know(d, npc, bare(goods), rng, goods), None
    text = _unheld(lambda: near_miss.question(d, fact, rng))
    return text, dont_know(d, npc, f"{_topic_words(fact)}, but what I know does not say it", rng), None


def game_state(rng: random.Random) -> tuple[tuple[str, str], ...]:
    """Now and then a line comes with some game state."""
    if rng.random() < 0.2:
        return (rng.choice([("time", "night"), ("weather", "rain"), ("player_gold", "12"), ("location", "square")]),)
    return ()


def make_examples(n: int, seed: int, held_out: bool = False, shipped_share: float = 0.6,
                  only: list[tuple[DemoNpc, Npc]] | None = None, follow_share: float | None = None,
                  version: int = DATA_VERSION) -> list[Example]:
    rng = random.Random(seed)
    follow_share = FOLLOW_SHARE.get(version, 0.1) if follow_share is None else follow_share
    shipped = list(shipped_npcs().values()) if only is None else only
    out = []
    shouts = not held_out and only is None  # test and evaluation sets draw as before: never shouted
    for i in range(n):
        while True:  # from version 16, an example holding a line of development set O is drawn again
            ex = _example(i, rng, shipped, shipped_share, only, follow_share, held_out, shouts, version)
            if version < 16 or not any(normal(t) in DEV_O for t in (ex.say, *(turn.say for turn in ex.history))):
                break
        out.append(ex)
    return out


def _example(i: int, rng: random.Random, shipped: list, shipped_share: float, only, follow_share: float,
             held_out: bool, shouts: bool, version: int) -> Example:
    """One training example (make_examples' draws, in order)."""
    if only is not None or rng.random() < shipped_share:
        d, npc = rng.choice(shipped)
    else:
        d = random_npc(rng, i)
        npc = npc_from_demo(d)
    history = []
    for _ in range(rng.choice([0, 0, 0, 1, 2])):
        text, reply, _ = one_turn(d, npc, rng, held_out, version)
        text = maybe_shouted(text, rng, version) if shouts else text
        history.append(dialogues.Turn(text, reply.final, state=game_state(rng)))
    if only is None and rng.random() < follow_share:
        earlier, text, reply, fact = follow_up(d, npc, rng, version)
        history.append(earlier)
        key = fact.key if fact is not None else None
    else:
        text, reply, key = one_turn(d, npc, rng, held_out, version)
    while only is not None and key is None:  # evaluation sets ask about facts only
        text, reply, key = one_turn(d, npc, rng, held_out, version)
    text = maybe_shouted(text, rng, version) if shouts else text
    return Example(npc, tuple(history), text, reply, key, game_state(rng))


def rendered(tok, ex: Example) -> Rendered:
    """The example as `parley dataset` renders it: input_ids and labels."""
    return render(tok, ex.npc, ex.as_dialogue(), MAX_CONTEXT)


def prompt_ids(tok, ex: Example) -> list[int]:
    """Exactly what runtime/engine.py sends the model for this request."""
    r = rendered(tok, ex)
    return r.input_ids[:r.prompt_len]


class TextRecorder:
    """Stands in for the tokenizer to collect every text piece (to train the BPE on)."""

    def __init__(self):
        self.pieces: list[str] = []

    def special(self, name: str) -> int:
        return 0

    def text(self, s: str) -> list[int]:
        self.pieces.append(s)
        return [0]


class RawHarmonyTokenizer:
    """runtime.tokenizer.HarmonyTokenizer's interface over a bare tokenizers.Tokenizer (before export)."""

    def __init__(self, tokenizer):
        from runtime.harmony_tokens import OPTIONAL, REQUIRED
        self._tok = tokenizer
        self._tok.encode_special_tokens = True
        self.ids = {n: tokenizer.token_to_id(n) for n in REQUIRED + OPTIONAL}

    def special(self, name: str) -> int:
        return self.ids[name]

    def text(self, s: str) -> list[int]:
        return self._tok.encode(s, add_special_tokens=False).ids
