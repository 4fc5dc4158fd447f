"""People's player lines (tools/demo/player_lines/) as the demo's data generator uses them."""
from __future__ import annotations

import json
import random

import pytest

from tools.demo import dataset, player_bank
from tools.demo.facts import SHIPPED


def test_every_shipped_fact_has_peoples_lines_and_every_npc_questions_it_cannot_answer():
    bank = player_bank.load()
    for d in SHIPPED:
        for fact in d.facts:
            assert len(bank.facts[d.id, fact.label]) >= 40, (d.id, fact.label)
        assert len(bank.unknown[d.id]) >= 40
    assert {row[0] for row in bank.follow_ups} == {d.id for d in SHIPPED}
    assert {row[0] for row in bank.two_part} == {d.id for d in SHIPPED}


def test_an_npc_is_asked_only_the_other_npcs_questions_that_none_of_its_facts_answers():
    bank = player_bank.load()
    # The watchtower is Aldric's news and Marta's rumour: Marta must not learn to disown it.
    assert not set(bank.facts["aldric", "tower"]) & set(bank.cross("marta"))
    assert set(bank.facts["aldric", "gate"]) <= set(bank.cross("marta"))
    assert not set(bank.facts["marta", "room"]) & set(bank.cross("marta"))


def test_a_follow_up_row_is_used_only_when_its_earlier_line_names_one_fact():
    labels = {f.label for f in SHIPPED[0].facts}  # brenna
    assert player_bank.earlier_fact(labels, "how much for an iron sword") == "iron"
    assert player_bank.earlier_fact(labels, "Shields? How much") == "shield"
    assert player_bank.earlier_fact(labels, "iron or steel, which is cheaper") is None  # two facts named
    assert player_bank.earlier_fact(labels, "hello there") is None


def test_a_bank_naming_a_fact_the_npc_does_not_have_is_refused_with_its_file(tmp_path):
    (tmp_path / "bad.json").write_text(json.dumps({"marta": {"steel": ["steel sword?"]}}))
    player_bank.load.cache_clear()
    try:
        with pytest.raises(ValueError, match=r"bad\.json: marta has no fact 'steel'"):
            player_bank.load(tmp_path)
    finally:
        player_bank.load.cache_clear()


def test_typos_change_some_longer_words_and_keep_the_rest():
    rng = random.Random(3)
    line = "could you tell me what a steel sword costs around here"
    slipped = [player_bank.typos(line, rng, rate=0.5) for _ in range(20)]
    assert any(s != line for s in slipped)
    for s in slipped:
        assert len(s.split(" ")) == len(line.split(" "))
        assert all(a == b for a, b in zip(s.split(" "), line.split(" ")) if len(b) < 4)


def test_version_3_data_asks_the_shipped_npcs_in_peoples_words_and_answers_them_right():
    bank = player_bank.load()
    shipped = {d.name: d for d in SHIPPED}
    own = {(npc, dataset.normal(line)): label for (npc, label), lines in bank.facts.items() for line in lines}
    others = {d.id: {dataset.normal(line) for line in bank.cross(d.id)} for d in SHIPPED}
    answered = disowned = 0
    for ex in dataset.make_examples(1500, seed=5, version=3):
        d, said = shipped.get(ex.npc.name), dataset.normal(ex.say)
        if d is None:
            continue
        if (d.id, said) in own and ex.key is not None:  # its own fact, in people's words: the right answer
            assert ex.key == next(f.key for f in d.facts if f.label == own[d.id, said]), (ex.say, ex.reply.final)
            answered += 1
        elif said in others[d.id]:  # another NPC's question: it says it does not know
            assert ex.key is None and not any(f.key in ex.reply.final for f in d.facts), (ex.say, ex.reply.final)
            disowned += 1
    assert answered > 100 and disowned > 10


def test_version_4_tells_stories_about_other_things_before_a_question():
    from tools.demo import player_talk

    shipped = {d.name: d for d in SHIPPED}
    told = 0
    for ex in dataset.make_examples(2000, seed=6, version=4):
        d = shipped.get(ex.npc.name)
        stories = [(story, touches) for story, touches in player_talk.STORIES if story.lower() in ex.say.lower()]
        if d is None or not stories:
            continue
        told += 1
        if ex.key is not None:  # the story never touches the fact the question asks for
            asked = next(f.label for f in d.facts if f.key == ex.key)
            assert all(asked not in touches for _, touches in stories), (ex.say, ex.reply.final)
    assert told > 50


def test_version_4_names_the_other_sword_by_comparison_only_after_the_first():
    from tools.demo import player_talk

    relative = {name for names in player_talk.RELATIVE.values() for name in names}
    d, npc = dataset.shipped_npcs()["brenna"]
    rng = random.Random(7)
    seen = 0
    for _ in range(4000):
        earlier, text, reply, fact = dataset.follow_up(d, npc, rng, version=4)
        if not any(name in text.lower() for name in relative) or len(text) > 40:
            continue
        seen += 1
        before = earlier.reply.lower()
        # only right after one sword was priced, asking for the other (never after a shield's price)
        assert "iron sword" in before or "steel sword" in before, (earlier, text, reply.final)
        assert (fact.label == "steel") == ("iron sword" in before), (earlier, text, reply.final)
    assert seen > 20


def banks_lines(pattern: str, follow_ups: bool = False) -> set[str]:
    """The normal forms of the single lines (and with follow_ups, the follow-ups' lines) of the bank files."""
    found = set()
    for path in sorted(player_bank.FOLDER.glob(pattern)):
        data = json.loads(path.read_text())
        found |= {dataset.normal(line) for npc in ("brenna", "aldric", "marta")
                  for lines in data.get(npc, {}).values() for line in lines}
        if follow_ups:
            found |= {dataset.normal(row["say"]) for row in data["follow_ups"]}
    return found


def test_version_6_draws_the_fourth_banks_and_asks_follow_ups_about_twice_as_often():
    fourth = banks_lines("bank_4*.json", follow_ups=True)
    assert len(fourth) > 600
    follow_says = {dataset.normal(row[2]) for row in player_bank.load(version=6).follow_ups}

    def counts(version: int) -> tuple[int, int]:
        examples = dataset.make_examples(3000, seed=8, version=version)
        said = [dataset.normal(ex.say) for ex in examples]
        return sum(s in fourth for s in said), sum(s in follow_says for s in said)

    (fourth_5, follow_5), (fourth_6, follow_6) = counts(5), counts(6)
    assert fourth_6 > 150 and fourth_6 > 3 * fourth_5  # version 5 says a few short lines the same way
    assert follow_6 > 1.6 * follow_5 > 0


def test_version_7_leaves_out_peoples_follow_ups_that_hold_a_held_out_phrasing():
    """A follow-up's earlier line is often a plain question that is also one of the template test sets'
    held-out phrasings ("What's the reward for a wolf pelt?"); from version 7 such rows are never drawn."""
    def held(row) -> bool:
        return any(dataset.holds_held_out(t) for t in row[1:3])
    bank = player_bank.load(version=7)
    assert sum(map(held, bank.follow_ups + bank.two_part)) > 10  # they are in the banks
    rng = random.Random(9)
    for d, _ in dataset.shipped_npcs().values():
        for kind in ("follow", "two"):
            rows = [dataset.from_bank(d, kind, rng, 7) for _ in range(1500)]
            assert not [r for r in rows if r is not None and held(r)]


def test_version_8_follow_ups_also_ask_what_the_npc_does_not_know_and_get_an_honest_answer():
    """"And a lantern?" after a sword's price, "Who saw it?" after a rumour: the answer says the NPC does not
    know or sell it, and states no fact, least of all the one just discussed."""
    from tools.demo import freeform

    def follow_ups(version: int) -> list:
        return [ex for ex in dataset.make_examples(3000, seed=11, version=version) if ex.history
                and "after asking about" in ex.reply.analysis]
    unknown = [ex for ex in follow_ups(8) if ex.key is None]
    answered = [ex for ex in follow_ups(8) if ex.key is not None]
    assert not [ex for ex in follow_ups(7) if ex.key is None]  # version 7 had none
    assert 0.2 < len(unknown) / (len(unknown) + len(answered)) < 0.4
    for ex in unknown:
        assert "I don't" in ex.reply.analysis
        shipped = freeform.FACTS.get(ex.npc.id, {})
        assert not [key for key, words in shipped.items() if freeform.words_in(ex.reply.final, words)], ex
    assert len({dataset.normal(ex.say) for ex in unknown}) > 60  # composed, not a handful of lines


def test_version_9_asks_single_questions_next_to_a_fact_that_it_does_not_answer():
    """"When will Tomas be back?", "How much is a writ?", "A steel axe?": they name one of the NPC's things,
    but its fact does not hold the answer, so the reply says it does not know or sell it and states no fact."""
    from tools.demo import freeform, near_miss

    def near(version: int) -> list:
        return [ex for ex in dataset.make_examples(3000, seed=12, version=version)
                if "what I know does not say it" in ex.reply.analysis]
    assert not near(8)  # version 8 had none
    asked = near(9)
    assert {ex.npc.id for ex in asked} >= {"brenna", "aldric", "marta"}
    for ex in asked:
        assert ex.key is None and "I don't know that." in ex.reply.analysis
        shipped = freeform.FACTS.get(ex.npc.id, {})
        assert not [key for key, words in shipped.items() if freeform.words_in(ex.reply.final, words)], ex
    assert len({dataset.normal(ex.say) for ex in asked}) > 100  # composed, not a handful of lines
    goods = [ex for ex in dataset.make_examples(3000, seed=12, version=9)
             if ex.npc.id == "brenna" and "steel axe" in ex.say.lower() and not ex.history]
    assert goods and all("I don't sell that." in ex.reply.analysis for ex in goods)


def test_version_10_asks_near_miss_questions_more_often_and_leaves_version_9_as_it_was():
    """Version 10 asks what the NPC cannot answer a third more often, 60% of it next to a fact (40% in 9)."""
    def shares(version: int) -> tuple[float, float]:
        singles = [ex for ex in dataset.make_examples(4000, seed=13, version=version) if not ex.history]
        unknown = [ex for ex in singles if ex.key is None and "I don't" in ex.reply.analysis]
        near = [ex for ex in unknown if "what I know does not say it" in ex.reply.analysis]
        return len(unknown) / len(singles), len(near) / len(unknown)
    unknown_9, near_9 = shares(9)
    unknown_10, near_10 = shares(10)
    assert unknown_10 > 1.15 * unknown_9
    assert near_10 > 1.2 * near_9
    assert dataset.NEAR_MISS_SHARE[9] == 0.4 and dataset.WEIGHTS[9] == (30, 4, 12, 2, 1, 1, 1, 3)


def test_near_miss_questions_name_real_facts_and_goods_the_npc_does_not_sell():
    """A typo in a label would silently drop a fact's near misses; goods it sells would teach a wrong answer."""
    from tools.demo import near_miss
    labels = {(d.id, f.label) for d in SHIPPED for f in d.facts}
    assert set(near_miss.SUBJECTS) <= labels and set(near_miss.OWN) <= labels
    for d in SHIPPED:
        sold = {f.slots["item"] for f in d.facts if f.topic == "price"}
        for goods in near_miss.GOODS.get(d.id, []):
            assert not [item for item in sold if item in goods], (d.id, goods)
        unpriced = [f for f in d.facts if f.topic != "price"]
        assert sum(bool(near_miss.templates(d, f)) for f in unpriced) == len(unpriced), d.id


def test_from_version_11_a_peoples_line_typed_with_a_typo_is_never_a_free_form_line():
    """Version 10 checked people's follow-up and two-part lines as written, then added typos: "shield price?"
    came out once as set G's "shild price" in the twelfth run's data. 11 checks what is typed; 10 stays as it
    was trained."""
    seeds = [s for s in range(2000)
             if dataset.normal(dataset.bank_typed("shield price?", random.Random(s), 10)) == "shild price"]
    assert seeds  # the slip really happens (a dropped letter in a word of four or more)
    for s in seeds:
        typed = dataset.bank_typed("shield price?", random.Random(s), 11)
        assert dataset.normal(typed) not in dataset.FREE_FORM
    assert "shild price" in dataset.FREE_FORM  # withdrawn from scoring, still kept out of the data
    assert dataset.DATA_VERSION >= 11


def said(examples) -> list[str]:
    return [dataset.normal(t) for ex in examples for t in (ex.say, *(h.say for h in ex.history))]


def test_from_version_11_no_path_of_the_generator_lets_a_free_form_line_through(monkeypatch):
    """Every way a line is typed or chatted, made to come out as a free-form line half the time: version 10
    lets some through (as it was trained), 11 none."""
    from tools.demo import phrasing, player_bank, player_talk

    free = "shild price"
    for module, name in ((player_bank, "typos"), (player_talk, "noise"), (phrasing, "chitchat")):
        real = getattr(module, name)
        monkeypatch.setattr(module, name, lambda a, rng, *rest, real=real: free if rng.random() < 0.5
                            else real(a, rng, *rest))
    assert free in said(dataset.make_examples(1500, seed=3, version=10))
    assert not set(said(dataset.make_examples(1500, seed=3, version=11))) & dataset.FREE_FORM


def test_version_11_is_version_10_wherever_no_free_form_line_came_up():
    ten, eleven = dataset.make_examples(400, seed=5, version=10), dataset.make_examples(400, seed=5, version=11)
    assert not set(said(ten)) & dataset.FREE_FORM
    assert [(ex.say, ex.history, ex.reply) for ex in ten] == [(ex.say, ex.history, ex.reply) for ex in eleven]


def shouting(examples) -> float:
    lines = [ex.say for ex in examples]
    return sum(t == t.upper() and any(c.isalpha() for c in t) for t in lines) / len(lines)


def test_version_12_shouts_a_share_of_player_lines_and_never_a_free_form_or_test_line():
    """The demo tokenizer spells capitals letter by letter; 11 had them only in a few people's lines."""
    eleven, twelve = dataset.make_examples(3000, seed=7, version=11), dataset.make_examples(3000, seed=7, version=12)
    assert shouting(eleven) < 0.015 and 0.04 < shouting(twelve) < 0.12
    assert any(h.say == h.say.upper() and len(h.say) > 8 for ex in twelve for h in ex.history)
    assert not set(said(twelve)) & dataset.FREE_FORM
    assert not [ex for ex in twelve if dataset.holds_held_out(ex.say)]
    # the template test sets and the evaluation sets are drawn as before: nothing shouted, nothing moved
    for kwargs in ({"held_out": True}, {"only": [next(iter(dataset.shipped_npcs().values()))]}):
        a = dataset.make_examples(300, seed=2, version=11, **kwargs)
        b = dataset.make_examples(300, seed=2, version=12, **kwargs)
        assert [(ex.say, ex.history, ex.reply) for ex in a] == [(ex.say, ex.history, ex.reply) for ex in b]


def test_a_shouted_line_keeps_its_words_and_its_normal_form():
    rng = random.Random(4)
    for line in ("How much for an iron sword?", "when do u open", "Bed for the night. Price?"):
        for _ in range(20):
            loud = dataset.shouted(line, rng)
            assert loud == loud.upper() and dataset.normal(loud) == dataset.normal(line)


def test_version_13_draws_the_fifth_banks_and_version_12_does_not():
    fifth = banks_lines("bank_5*.json")
    earlier = {dataset.normal(line) for lines in player_bank.load(version=12).facts.values() for line in lines}
    earlier |= {dataset.normal(line) for lines in player_bank.load(version=12).unknown.values() for line in lines}
    only_fifth = fifth - earlier
    assert len(only_fifth) > 800
    twelve, thirteen = dataset.make_examples(3000, seed=9, version=12), dataset.make_examples(3000, seed=9, version=13)
    fifth_12 = sum(dataset.normal(ex.say) in only_fifth for ex in twelve)  # short lines the composer also makes
    assert sum(dataset.normal(ex.say) in only_fifth for ex in thirteen) > max(40, 5 * fifth_12)
    assert not set(said(thirteen)) & dataset.FREE_FORM
    assert not [ex for ex in thirteen if dataset.holds_held_out(ex.say)]


def test_version_14_ends_in_follow_ups_more_often_and_more_of_them_ask_what_the_npc_does_not_know():
    """The shipped checkpoint's follow-ups on sets C to F: 37 of 45 right with unsure replies off, four of
    its five wrong ones a follow-up about something it does not know answered with the fact just discussed."""
    def shares(version: int) -> tuple[float, float]:
        examples = dataset.make_examples(3000, seed=14, version=version)
        follow = [ex for ex in examples if ex.history and "after asking about" in ex.reply.analysis]
        return len(follow) / len(examples), sum(ex.key is None for ex in follow) / len(follow)
    follow_13, unknown_13 = shares(13)
    follow_14, unknown_14 = shares(14)
    assert follow_14 > follow_13 + 0.05 and unknown_14 > unknown_13 + 0.04


def test_version_16_follows_up_after_lines_that_only_tell_and_asks_to_hear_answers_again():
    """Development set O: the shipped checkpoint deflected, or named the wrong fact, after a line that only told
    something ("My cart goes up the north road at dusk." / "is that a bad idea?") and to "say again?"."""
    from tools.demo import freeform_dev_o, told_first

    told = {dataset.normal(s): {dataset.normal(q): label for q, label in questions}
            for rows in told_first.TOLD.values() for s, questions in rows}
    from tools.demo import player_talk
    earlier = {dataset.normal(f) for lines in player_talk.FOLLOW_SAME.values() for f in lines}
    again = {dataset.normal(a) for a in told_first.AGAIN} - earlier  # "say that again?" is an older rumour follow-up

    def follow_ups(version: int) -> tuple[list, list]:
        examples = dataset.make_examples(3000, seed=16, version=version)
        after_told = [ex for ex in examples if ex.history and dataset.normal(ex.history[-1].say) in told
                      and dataset.normal(ex.say) in told[dataset.normal(ex.history[-1].say)]]
        asked_again = [ex for ex in examples if ex.history and dataset.normal(ex.say) in again]
        return after_told, asked_again

    told_15, again_15 = follow_ups(15)
    told_16, again_16 = follow_ups(16)
    assert not told_15 and len(told_16) > 40
    assert len(again_16) > 3 * len(again_15) + 20
    npcs = {d.id: d for d, _ in dataset.shipped_npcs().values()}
    for ex in told_16:  # the fact the question asks for, whatever the NPC said to the telling
        label = told[dataset.normal(ex.history[-1].say)][dataset.normal(ex.say)]
        key = next(f.key for f in npcs[ex.npc.id].facts if f.label == label)
        assert key.lower() in ex.reply.final.lower(), (ex.history[-1].say, ex.say, ex.reply.final)
    for ex in again_16:  # the answer just given, again
        assert ex.key is not None and ex.key.lower() in ex.history[-1].reply.lower(), (ex.history[-1], ex.say)
        assert ex.key.lower() in ex.reply.final.lower()
    dev_o = {dataset.normal(t) for line in freeform_dev_o.LINES for t in (line.say, line.before) if t}
    examples = dataset.make_examples(3000, seed=16, version=16)
    assert not {dataset.normal(t) for ex in examples for t in (ex.say, *(h.say for h in ex.history))} & dev_o
