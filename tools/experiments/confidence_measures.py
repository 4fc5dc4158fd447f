"""A measurement study: does another confidence measure separate right replies from wrong ones better than
runtime/confidence.py's (the lowest top-K probability of any token the analysis chose)?

    .venv/bin/python -m tools.experiments.confidence_measures collect [--model .cache/demo-model]
    .venv/bin/python -m tools.experiments.confidence_measures analyze

`collect` runs the real Engine as tools/demo/freeform.evaluate does (greedy, min_confidence 0, a session for a
follow-up's two turns) on the development sets C to F only (tools/demo/judge.development_sets; the blind
sets G onwards are never imported or read), recording per analysis token its text, the chosen token's
probability over the top-K candidates (what runtime/confidence.py reads), the runner-up's, the entropy over
the top-K, and the same figures over the full vocabulary; it writes .cache/confidence-cf.json. runtime/ is
not edited: runtime.reply.Confidence is swapped in-process for a recording subclass.

`analyze` reads that JSON only, computes candidate measures per reply, sweeps thresholds for each (a reply
below the threshold becomes its NPC's first unsure line, scored as judge.at_threshold does), reports each
measure's least judge cost (deflections + other half only + 3 x wrong facts), a two-fold cross-validation
(threshold chosen on C+D, cost on E+F, and the reverse), and the wrong facts left at the current 0.80.
"""
from __future__ import annotations

import argparse
import json
import math
import re
import sys
from pathlib import Path

import numpy as np

OUT = Path(".cache/confidence-cf.json")

# ---------------------------------------------------------------------------------------------------------
# collect


def collect(model: Path, out_path: Path) -> None:
    import dataclasses

    import runtime.reply
    from runtime.confidence import Confidence
    from runtime.engine import Engine, ReplyRequest
    from runtime.sampler import GREEDY
    from tools.demo import dataset, judge
    from tools.demo.freeform import score

    made: list["Recording"] = []

    class Recording(Confidence):
        def __init__(self) -> None:
            super().__init__()
            self.steps: list[dict] = []
            made.append(self)

        def chose(self, out, row: int, token: int) -> None:
            super().chose(out, row, token)
            values, ids = out.candidates()
            v, i = values[row].astype(np.float64), ids[row]
            w = np.exp(v - v.max())
            p = w / w.sum()
            order = np.argsort(-p)
            at = np.flatnonzero(i == token)
            p_tok = float(p[at[0]] if len(at) else p.min())
            logits = out.logits()[row].astype(np.float64)
            lw = np.exp(logits - logits.max())
            fp = lw / lw.sum()
            fs = np.sort(fp)[::-1]
            self.steps.append({
                "id": int(token),
                "p": p_tok,  # as runtime/confidence.py computes it
                "p1": float(p[order[0]]), "p2": float(p[order[1]]) if len(p) > 1 else 0.0,
                "top_id": int(i[order[0]]), "second_id": int(i[order[1]]) if len(p) > 1 else -1,
                "ent": float(-(p * np.log(np.clip(p, 1e-300, None))).sum()),
                "full_p": float(fp[token]), "full_p2": float(fs[1]),
                "full_ent": float(-(fp * np.log(np.clip(fp, 1e-300, None))).sum()),
                "k": int(len(p)),
            })

    runtime.reply.Confidence = Recording  # in this process only

    npcs = {i: dataclasses.replace(n, min_confidence=0.0) for i, (_, n) in dataset.shipped_npcs().items()}
    sets = {}
    for name, lines in judge.development_sets().items():
        engine = Engine(model, npcs)  # one per set, as freeform.evaluate makes (its session names repeat)
        tok = engine.tok
        rows = []
        for i, line in enumerate(lines):
            session = f"freeform-{i}" if line.before else None  # as freeform.evaluate names them
            if line.before:
                list(engine.reply(ReplyRequest(npc=line.npc, text=line.before, session_id=session, sampling=GREEDY,
                                                deadline_ms=60_000)))
            n_before = len(made)
            result = list(engine.reply(ReplyRequest(npc=line.npc, text=line.say, session_id=session,
                                                      sampling=GREEDY, deadline_ms=60_000)))[-1]
            rec = made[n_before] if len(made) > n_before else None
            steps = rec.steps if rec is not None else []
            for s in steps:
                s["text"] = tok.decode([s["id"]])
                s["top"] = tok.decode([s["top_id"]])
                s["second"] = tok.decode([s["second_id"]]) if s["second_id"] >= 0 else ""
            rows.append({"npc": line.npc, "say": line.say, "before": line.before, "fact": line.fact,
                         "also": list(line.also), "follow_up": bool(line.before), "answer": result.text,
                         "score": score(line, result.text), "confidence": result.stats.confidence,
                         "finish": result.stats.finish_reason, "reasoning": result.reasoning, "steps": steps})
            del made[:]
        sets[name] = rows
        print(f"set {name}: {len(rows)} lines, right {sum(r['score'] == 'right' for r in rows)}, "
              f"wrong {sum(r['score'] == 'wrong' for r in rows)}", flush=True)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    out_path.write_text(json.dumps({"model": str(model), "sets": sets}, indent=0))
    print(f"wrote {out_path}")


# ---------------------------------------------------------------------------------------------------------
# measures (higher = surer; a reply below the threshold becomes unsure)

BOILERPLATE = ("Answer briefly, in my own voice.", "Say so, in my own voice.")


def spans(steps: list[dict]) -> dict[str, list[int]]:
    """Token indices of the analysis's parts, by character offsets of the decoded tokens.
    ask: the words after "They ask about" up to its full stop (inclusive); know: after "I know:" (or the
    sentence after the ask, e.g. "I don't know that.") up to its end; content: ask + know (no boilerplate
    "Answer briefly..."/"Say so..."/"My style: ..."); first: the first token of the ask's content."""
    text = "".join(s["text"] for s in steps)
    starts, pos = [], 0
    for s in steps:
        starts.append(pos)
        pos += len(s["text"])
    ends = [a + len(s["text"]) for a, s in zip(starts, steps)]
    # a token's own characters, without its leading space; special tokens (<|end|>) belong to no span
    cores = [a + len(s["text"]) - len(s["text"].lstrip()) for a, s in zip(starts, steps)]
    special = [s["text"].startswith("<|") for s in steps]

    def tokens_in(a: int, b: int) -> list[int]:
        # tokens whose own characters overlap [a, b)
        return [j for j in range(len(steps)) if cores[j] < b and ends[j] > a and ends[j] > cores[j]
                and not special[j]]

    m = re.search(r"They ask about", text)
    ask_from = m.end() if m else 0
    # the ask ends at the first ". " after it that starts the next sentence ("I know:", "I don't ...")
    m2 = re.search(r"\.\s+(?=I know:|I don't|I do not|Answer briefly|Say so|My style)", text[ask_from:])
    ask_to = ask_from + m2.start() + 1 if m2 else len(text)
    rest_from = ask_to
    bp = [text.find(b, rest_from) for b in BOILERPLATE + ("My style:",)]
    bp = [x for x in bp if x >= 0]
    know_to = min(bp) if bp else len(text)
    mk = re.search(r"I know:", text[rest_from:know_to])
    know_from = rest_from + mk.end() if mk else rest_from
    ask = tokens_in(ask_from, ask_to)
    know = tokens_in(know_from, know_to)
    content = tokens_in(ask_from, know_to)
    first = [j for j in ask if steps[j]["text"].strip()][:1]
    return {"all": list(range(len(steps))), "ask": ask, "know": know, "content": content, "first": first}


def measures(row: dict) -> dict[str, float | None]:
    steps = row["steps"]
    if not steps:
        return {}
    sp = spans(steps)
    p = np.array([s["p"] for s in steps])
    p2 = np.array([s["p2"] for s in steps])
    p1 = np.array([s["p1"] for s in steps])
    ent = np.array([s["ent"] for s in steps])
    fp = np.array([s["full_p"] for s in steps])
    margin = p - np.where(np.isclose(p, p1), p2, p1)  # chosen minus the best other (greedy: p1 - p2)

    def mn(a, idx):
        return float(a[idx].min()) if len(idx) else None

    def agg(f, a, idx):
        return float(f(a[idx])) if len(idx) else None

    c, k, a = sp["content"], sp["know"], sp["ask"]
    out = {
        "min_p (current)": float(round(p.min(), 4)),
        "min_p content": mn(p, c),
        "min_p ask": mn(p, a),
        "min_p know": mn(p, k),
        "prod_p content": agg(lambda x: np.exp(np.log(x).sum()), p, c),
        "prod_p all": float(np.exp(np.log(p).sum())),
        "geo-mean p content": agg(lambda x: np.exp(np.log(x).mean()), p, c),
        "min margin all": float(margin.min()),
        "min margin content": mn(margin, c),
        "-max entropy all": float(-ent.max()),
        "-max entropy content": agg(lambda x: -x.max(), ent, c),
        "first content p": mn(p, sp["first"]),
        "min full-vocab p": float(fp.min()),
        "2nd-lowest p content": agg(lambda x: np.sort(x)[1] if len(x) > 1 else x[0], p, c),
        "min(ask) * min(know)": (mn(p, a) * mn(p, k)) if a and k else None,
        "min p ask-or-know (min of both)": min(x for x in (mn(p, a), mn(p, k)) if x is not None)
        if (a or k) else None,
    }
    # the ask's punctuation ("." against ", after asking about ...": whether it is a follow-up) left out
    words = [j for j in c if any(ch.isalnum() for ch in steps[j]["text"])]
    ask_words = [j for j in a if any(ch.isalnum() for ch in steps[j]["text"])]
    out["min_p content words (no punct.)"] = mn(p, words)
    out["min_p ask words (no punct.)"] = mn(p, ask_words)
    out["prod_p ask"] = agg(lambda x: np.exp(np.log(x).sum()), p, a)
    out["1 - sum(1-p) content"] = agg(lambda x: 1 - (1 - x).sum(), p, c)
    out["mean of 2 lowest p content"] = agg(lambda x: np.sort(x)[:2].mean(), p, c)
    # a follow-up discount idea: the "after asking about ..." clause of a follow-up's ask is restating the
    # history; leave it out of the ask span
    txt = [s["text"] for s in steps]
    joined = "".join(txt)
    cut = joined.find(", after asking about")
    if cut >= 0 and a:
        starts = np.cumsum([0] + [len(t) for t in txt[:-1]])
        a2 = [j for j in a if starts[j] < cut]
        out["min_p content w/o 'after asking' clause"] = min(x for x in (mn(p, a2), mn(p, k)) if x is not None) \
            if (a2 or k) else None
    else:
        out["min_p content w/o 'after asking' clause"] = out["min_p content"]
    return out


# ---------------------------------------------------------------------------------------------------------
# analysis


def score_unsure(row: dict, unsure: dict[str, str]) -> str:
    from tools.demo.freeform import Line, score

    line = Line(row["npc"], row["say"], row["fact"], row["before"], tuple(row["also"]))
    return score(line, unsure[row["npc"]])


def tally(rows: list[dict], values: list[float | None], t: float) -> dict:
    count = {"right": 0, "wrong": 0, "deflection": 0, "partial": 0, "fu_right": 0, "unsure": 0}
    for r, v in zip(rows, values):
        s = r["score"]
        if t > -math.inf and (v is None or v < t):
            s = r["unsure_score"]
            count["unsure"] += 1
        count[s] += 1
        count["fu_right"] += r["follow_up"] and s == "right"
    count["cost"] = count["deflection"] + count["partial"] + 3 * count["wrong"]
    return count


def candidates(values: list[float | None]) -> list[float]:
    """Every threshold that changes something: -inf (off) and just above each distinct value."""
    vs = sorted({v for v in values if v is not None})
    out = [-math.inf]
    for v in vs:
        out.append(np.nextafter(v, math.inf))
    return out


COST = {"right": 0, "wrong": 3, "deflection": 1, "partial": 1}


def best(rows: list[dict], values: list[float | None]) -> tuple[float, dict]:
    """The threshold of least cost over every value (a tie goes to the lowest threshold, the fewest unsure
    replies, as judge's rule does), and its tally."""
    v = np.array([-math.inf if x is None else x for x in values], dtype=np.float64)
    keep = np.array([COST[r["score"]] for r in rows])
    swap = np.array([COST[r["unsure_score"]] for r in rows])
    order = np.argsort(v, kind="stable")
    vs, delta = v[order], (swap - keep)[order]
    # threshold just above vs[i] makes rows 0..j unsure, j the last index with the same value as vs[i]
    cum = np.cumsum(delta)
    last = np.r_[vs[1:] != vs[:-1], True]
    costs = np.r_[keep.sum(), keep.sum() + cum[last]]
    ts = np.r_[-math.inf, np.nextafter(vs[last], math.inf)]
    i = int(np.argmin(costs))  # first minimum: the lowest threshold
    t = float(ts[i])
    return t, tally(rows, values, t)


def curve(rows: list[dict], values: list[float | None], wrong_at_most: int) -> dict | None:
    """The tally with the most right answers among thresholds that leave at most `wrong_at_most` wrong facts."""
    got = None
    for t in candidates(values):
        c = tally(rows, values, t)
        if c["wrong"] <= wrong_at_most and (got is None or c["right"] > got["right"]):
            got = c
    return got


def analyze(path: Path) -> None:
    from tools.demo import judge

    data = json.loads(path.read_text())
    unsure = judge.unsure_lines()
    sets = data["sets"]
    for name, rows in sets.items():
        for r in rows:
            r["unsure_score"] = score_unsure(r, unsure)
            r["m"] = measures(r)
            r["set"] = name
    allrows = [r for rows in sets.values() for r in rows]
    names = list(allrows[0]["m"].keys())
    n_fu = sum(r["follow_up"] for r in allrows)

    # sanity: the recorded current measure is the stats' confidence
    mism = sum(1 for r in allrows if r["m"] and abs(r["m"]["min_p (current)"] - (r["confidence"] or 0)) > 1e-4)
    print(f"{len(allrows)} replies (C-F), {n_fu} follow-ups; current measure = stats.confidence on all but {mism}")
    off = tally(allrows, [0] * len(allrows), -math.inf)
    print(f"unsure off: right {off['right']}, wrong {off['wrong']}, deflection {off['deflection']}, "
          f"other half {off['partial']}, follow-ups right {off['fu_right']}/{n_fu}, cost {off['cost']}")
    cur = [r["m"].get("min_p (current)") for r in allrows]
    for t in judge.THRESHOLDS[1:]:
        c = tally(allrows, cur, t)
        print(f"  current at {t:.2f}: right {c['right']} wrong {c['wrong']} defl {c['deflection']} "
              f"half {c['partial']} fu_right {c['fu_right']} unsure {c['unsure']} cost {c['cost']}")

    # separation: AUC of each measure for right (vs wrong) among replies that are right or wrong
    def auc(vals, labels):
        pairs = [(v, l) for v, l in zip(vals, labels) if v is not None]
        pos = [v for v, l in pairs if l]
        neg = [v for v, l in pairs if not l]
        if not pos or not neg:
            return float("nan")
        pos, neg = np.array(pos), np.array(neg)
        gt = (pos[:, None] > neg[None, :]).sum() + 0.5 * (pos[:, None] == neg[None, :]).sum()
        return gt / (len(pos) * len(neg))

    print("\n== all of C-F: each measure's least cost (threshold swept over every value) ==")
    print(f"{'measure':<42} {'AUC r/w':>7} {'thr':>8} {'cost':>5} {'right':>5} {'wrong':>5} {'defl':>5} "
          f"{'half':>4} {'fu_r':>5} {'unsure':>6}")
    rw = [r for r in allrows if r["score"] in ("right", "wrong")]
    results = {}
    for n in names:
        vals = [r["m"].get(n) for r in allrows]
        t, c = best(allrows, vals)
        a = auc([r["m"].get(n) for r in rw], [r["score"] == "right" for r in rw])
        results[n] = (t, c)
        print(f"{n:<42} {a:7.3f} {t:8.4f} {c['cost']:5d} {c['right']:5d} {c['wrong']:5d} {c['deflection']:5d} "
              f"{c['partial']:4d} {c['fu_right']:5d} {c['unsure']:6d}")

    # the trade-off curves: most right answers for a given number of wrong facts left (in-sample)
    print("\n== right answers (follow-ups right) kept at a given number of wrong facts left, all of C-F ==")
    caps = (15, 12, 9, 7, 5)
    print(f"{'measure':<42} " + " ".join(f"{'wrong<=' + str(w):>13}" for w in caps))
    for n in names:
        vals = [r["m"].get(n) for r in allrows]
        cells = []
        for w in caps:
            c = curve(allrows, vals, w)
            cells.append(f"{c['right']:>3} ({c['fu_right']:>2}) c{c['cost']:<3}" if c else f"{'-':>13}")
        print(f"{n:<42} " + " ".join(f"{x:>13}" for x in cells))

    # paired bootstrap over lines: each measure's least cost against the current one's, same resample
    rng = np.random.default_rng(1)
    n_boot = 1000
    idx = [rng.integers(0, len(allrows), len(allrows)) for _ in range(n_boot)]
    bcost = {}
    for n in names:
        vals = [r["m"].get(n) for r in allrows]
        bcost[n] = np.array([best([allrows[i] for i in ix], [vals[i] for i in ix])[1]["cost"] for ix in idx])
    print(f"\n== paired bootstrap ({n_boot} resamples of the 498 lines): least cost minus the current measure's ==")
    print(f"{'measure':<42} {'mean':>6} {'95% interval':>15} {'P(better)':>9}")
    for n in names:
        d = bcost[n] - bcost["min_p (current)"]
        lo, hi = np.percentile(d, [2.5, 97.5])
        print(f"{n:<42} {d.mean():+6.1f} {f'[{lo:+.0f}, {hi:+.0f}]':>15} {(d < 0).mean():9.0%}")

    # cross-validation
    halves = {"CD": [r for r in allrows if r["set"] in ("c", "d")], "EF": [r for r in allrows if r["set"] in ("e", "f")]}
    print("\n== two-fold cross-validation: threshold chosen on one half, cost on the other ==")
    print(f"{'measure':<42} {'thr(CD)':>8} {'EF cost':>7} {'EF r/w':>7} {'thr(EF)':>8} {'CD cost':>7} "
          f"{'CD r/w':>7} {'sum':>5}  {'oracle EF/CD':>12}")
    cv = {}
    for n in names:
        parts = []
        tot = 0
        oracle = []
        for train, test in (("CD", "EF"), ("EF", "CD")):
            tv = [r["m"].get(n) for r in halves[train]]
            t, _ = best(halves[train], tv)
            c = tally(halves[test], [r["m"].get(n) for r in halves[test]], t)
            _, o = best(halves[test], [r["m"].get(n) for r in halves[test]])
            oracle.append(o["cost"])
            parts.append((t, c))
            tot += c["cost"]
        cv[n] = tot
        (t1, c1), (t2, c2) = parts
        print(f"{n:<42} {t1:8.4f} {c1['cost']:7d} {c1['right']:3d}/{c1['wrong']:<3d} {t2:8.4f} {c2['cost']:7d} "
              f"{c2['right']:3d}/{c2['wrong']:<3d} {tot:5d}  {oracle[0]:5d}/{oracle[1]:<5d}")
    # the current measure with judge's own fixed grid, for reference
    for train, test in (("CD", "EF"), ("EF", "CD")):
        cur_tr = [r["m"].get("min_p (current)") for r in halves[train]]
        grid = [(tally(halves[train], cur_tr, t if t > 0 else -math.inf)["cost"], t) for t in judge.THRESHOLDS]
        _, t = min(grid)
        c = tally(halves[test], [r["m"].get("min_p (current)") for r in halves[test]], t if t > 0 else -math.inf)
        print(f"  current measure on judge's grid {judge.THRESHOLDS}: chosen on {train} {t}, {test} cost {c['cost']} "
              f"(right {c['right']}, wrong {c['wrong']})")

    # random two-fold splits by line (a check on the one split by writer above)
    rng = np.random.default_rng(0)
    n_splits = 300
    vals = {n: [r["m"].get(n) for r in allrows] for n in names}
    oos = {n: [] for n in names}
    for _ in range(n_splits):
        mask = rng.random(len(allrows)) < 0.5
        for n in names:
            tot = 0
            for side in (mask, ~mask):
                tr = [r for r, s in zip(allrows, side) if s]
                te = [r for r, s in zip(allrows, side) if not s]
                t, _ = best(tr, [v for v, s in zip(vals[n], side) if s])
                tot += tally(te, [v for v, s in zip(vals[n], side) if not s], t)["cost"]
            oos[n].append(tot)
    base = np.array(oos["min_p (current)"])
    print(f"\n== {n_splits} random two-fold splits by line: out-of-sample cost (both folds summed) ==")
    print(f"{'measure':<42} {'mean':>6} {'sd':>5} {'mean diff vs current':>21} {'better':>7} {'worse':>6}")
    for n in names:
        x = np.array(oos[n])
        d = x - base
        print(f"{n:<42} {x.mean():6.1f} {x.std():5.1f} {d.mean():+21.1f} {(d < 0).mean():7.0%} {(d > 0).mean():6.0%}")

    # the wrong facts left at the current 0.80
    print("\n== wrong facts left at the current measure's 0.80 ==")
    left = [r for r in allrows if r["score"] == "wrong" and r["m"] and r["m"]["min_p (current)"] >= 0.80]
    for r in left:
        steps = r["steps"]
        low = sorted(range(len(steps)), key=lambda j: steps[j]["p"])[:3]
        lows = ", ".join(f"{steps[j]['text']!r} {steps[j]['p']:.3f} (2nd {steps[j]['second']!r} {steps[j]['p2']:.3f})"
                         for j in low)
        print(f"[{r['set']}] {r['npc']} fact={r['fact']} fu={r['follow_up']} say={r['say']!r}")
        if r["before"]:
            print(f"      before={r['before']!r}")
        print(f"      reasoning: {r['reasoning']!r}")
        print(f"      answer: {r['answer']!r}")
        print(f"      lowest: {lows}")

    # where the current measure's lowest token sits, wrong vs right
    print("\n== where the lowest-probability token sits (span), by score, unsure off ==")
    for sc in ("right", "wrong"):
        where = {"ask": 0, "know": 0, "boilerplate/other": 0}
        for r in allrows:
            if r["score"] != sc or not r["steps"]:
                continue
            sp = spans(r["steps"])
            j = int(np.argmin([s["p"] for s in r["steps"]]))
            where["ask" if j in sp["ask"] else "know" if j in sp["know"] else "boilerplate/other"] += 1
        print(f"  {sc}: {where}")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    c = sub.add_parser("collect")
    c.add_argument("--model", type=Path, default=Path(".cache/demo-model"))
    c.add_argument("--json", type=Path, default=OUT)
    a = sub.add_parser("analyze")
    a.add_argument("--json", type=Path, default=OUT)
    args = ap.parse_args()
    if args.cmd == "collect":
        collect(args.model, args.json)
    else:
        analyze(args.json)
    return 0


if __name__ == "__main__":
    sys.exit(main())
