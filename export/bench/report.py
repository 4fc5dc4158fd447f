"""The benchmark's outputs: a markdown table with ratios to onnxruntime-genai and the targets, a PNG, JSON."""
from __future__ import annotations

import json
import math
import platform
from pathlib import Path

GENAI = "onnxruntime-genai"
# metric -> (label, higher is better)
METRICS = {
    "ttft_ms_128": ("time to first token, 128-token prompt (ms)", False),
    "ttft_ms_512": ("time to first token, 512-token prompt (ms)", False),
    "warm_ttft_ms": ("time to first token, 32-token line on a warm 400-token prefix (ms)", False),
    "full_prompt_ttft_ms": ("time to first token, the same 432 tokens cold (ms)", False),
    "decode_tok_s": ("decode tokens/s, batch 1, 128 new tokens", True),
    "concurrent_tok_s_1": ("tokens/s, 1 NPC request through parley serve", True),
    "concurrent_tok_s_4": ("tokens/s, 4 concurrent NPC requests", True),
    "concurrent_tok_s_8": ("tokens/s, 8 concurrent NPC requests", True),
    "peak_rss_mb": ("peak memory, single-stream process (MB)", False),
    "python_share_pct": ("share of a reply's time outside the graph runs (%)", False),
}


def metric_keys(r: dict) -> dict[str, tuple[str, bool]]:
    """METRICS, plus any other concurrency level the run measured (--levels)."""
    keys = dict(METRICS)
    for k in r.get("parley", {}):
        if k.startswith("concurrent_tok_s_") and k not in keys:
            keys[k] = (f"tokens/s, {k.rsplit('_', 1)[1]} concurrent NPC requests", True)
    return keys


def _num(value) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "–"
    return f"{value:,.1f}" if value < 1000 else f"{value:,.0f}"


def targets(r: dict) -> list[tuple[str, float | None, str]]:
    """(target, measured ratio or None, verdict) for Parley's speed targets (docs/performance.md): decode
    speed against onnxruntime-genai and the bandwidth floor, warm-prefix time to first token."""
    p, g, f = r.get("parley", {}), r.get(GENAI, {}), r.get("floor", {})

    def ratio(a, b):
        return a / b if a and b else None

    rows = [("decode tokens/s ≥ 1.3× onnxruntime-genai", ratio(p.get("decode_tok_s"), g.get("decode_tok_s")), 1.3, True),
            ("decode tokens/s ≥ 60% of the bandwidth floor", ratio(p.get("decode_tok_s"), f.get("decode_tok_s")), 0.6, True),
            ("warm-prefix TTFT ≤ 0.25× genai's TTFT on the full prompt",
             ratio(p.get("warm_ttft_ms"), g.get("full_prompt_ttft_ms")), 0.25, False),
            ("8 concurrent NPCs ≥ 3× the single-request tokens/s",
             ratio(p.get("concurrent_tok_s_8"), p.get("concurrent_tok_s_1")), 3.0, True),
            ("Python work per reply ≤ 10% of its time (fraction)",
             p["python_share_pct"] / 100 if "python_share_pct" in p else None, 0.10, False)]
    out = []
    for name, value, bound, higher in rows:
        if value is None:
            out.append((name, None, "not measured"))
        else:
            met = value >= bound if higher else value <= bound
            out.append((name, value, "met" if met else "NOT met"))
    return out


def table(r: dict, checkpoint: Path, repeats: int) -> str:
    systems = [s for s in ("parley", GENAI, "transformers") if s in r]
    experts, dense = r["parley"].get("experts", "float"), r["parley"].get("dense", "float")
    genai = r.get(GENAI, {}).get("precision", "fp32")
    quantized = ", ".join(q for q in (f"{experts} experts" if experts != "float" else "",
                                      f"{dense} dense weights" if dense != "float" else "") if q)
    lines = [f"\nparley bench: {checkpoint}", f"{platform.machine()}, {platform.system()}, medians of {repeats} "
             f"interleaved rounds after warm-up"
             + (f"; parley runs {quantized} (so does the floor), onnxruntime-genai its {genai} build, "
                "transformers float32" if quantized else "") + "\n"]
    head = "| metric | " + " | ".join(systems) + " | parley / genai |"
    lines += [head, "| --- |" + " ---: |" * (len(systems) + 1)]
    for key, (label, _) in metric_keys(r).items():
        values = [r[s].get(key) for s in systems]
        if all(v is None for v in values):
            continue
        genai = r.get(GENAI, {}).get(key)
        ratio = f"{r['parley'][key] / genai:.2f}×" if genai and r["parley"].get(key) else "–"
        lines.append(f"| {label} | " + " | ".join(_num(v) for v in values) + f" | {ratio} |")
    f = r.get("floor", {})
    if f:
        lines.append(f"\nfloor: {f['active_weight_mb']:.0f} MB of active weights per token / "
                     f"{f['memory_bandwidth_gb_s']:.1f} GB/s measured read bandwidth = "
                     f"{f['decode_tok_s']:.1f} tokens/s")
    for name in systems:
        if "error" in r[name]:
            lines.append(f"{name}: not measured ({r[name]['error'].strip().splitlines()[-1]})")
    if "mean_batch_size" in r["parley"]:
        lines.append(f"parley serve: mean decode batch {r['parley']['mean_batch_size']:.2f} rows per step at the most "
                     "concurrent level, "
                     f"server peak memory {_num(r['parley'].get('server_peak_rss_mb'))} MB")
    lines.append("\n| target | measured | |\n| --- | ---: | --- |")
    for name, value, verdict in targets(r):
        lines.append(f"| {name} | {'–' if value is None else f'{value:.2f}'} | {verdict} |")
    return "\n".join(lines)


def chart(r: dict, path: Path) -> bool:
    """A bar chart of each metric relative to onnxruntime-genai; False when matplotlib is not installed."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return False
    systems = [s for s in ("parley", GENAI, "transformers") if s in r and "error" not in r[s]]
    keys = [k for k in METRICS if all(r[s].get(k) for s in systems)]
    base = GENAI if GENAI in systems else "parley"
    fig, ax = plt.subplots(figsize=(9, 4), dpi=100)
    width = 0.8 / len(systems)
    for i, s in enumerate(systems):
        # speed relative to the base system: >1 is better for both kinds of metric
        rel = [(r[s][k] / r[base][k]) if METRICS[k][1] else (r[base][k] / r[s][k]) for k in keys]
        ax.bar([x + i * width for x in range(len(keys))], rel, width, label=s)
    ax.axhline(1.0, color="grey", lw=0.8)
    ax.set_xticks([x + width * (len(systems) - 1) / 2 for x in range(len(keys))])
    ax.set_xticklabels([k.replace("_", "\n", 1) for k in keys], fontsize=7)
    ax.set_ylabel(f"speed relative to {base} (higher is better)")
    ax.set_title("parley bench")
    ax.legend()
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    plt.close(fig)
    return True


def write_json(r: dict, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(r, indent=2, sort_keys=False) + "\n")
