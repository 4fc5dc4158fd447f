"""`parley export` and `parley inspect`, registered through the parley.commands entry points.

Nothing heavy is imported at module level: `parley --help` must work without torch.
"""
from __future__ import annotations

import argparse
import json
import logging
from pathlib import Path

from runtime.cli_errors import CommandFailed

log = logging.getLogger(__name__)

EXPORT_EXAMPLE = """examples:
  parley export ./my-finetune ./models/blacksmith
  parley export ./gpt-oss-20b ./models/gpt-oss-20b-cpu --dense int4          # CPU: int4 experts and dense
  parley export ./my-finetune ./models/my-npcs-gpu --dtype float16 --dense int4      # CUDA (see docs: 20b)
  parley export ./gpt-oss-20b ./models/tavern --lora ./tavern-adapter
"""


def register_export(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("export", help="turn a Hugging Face gpt-oss checkpoint into a verified model folder",
                       description="Export a gpt-oss checkpoint (Hugging Face folder, optionally with a "
                                   "LoRA adapter) to ONNX, check it against the torch model, and write a "
                                   "self-contained model folder.",
                       epilog=EXPORT_EXAMPLE, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("checkpoint", type=Path, help="Hugging Face checkpoint folder (config.json, *.safetensors, "
                                                 "tokenizer.json)")
    p.add_argument("out_dir", type=Path, help="model folder to create")
    p.add_argument("--dtype", default="float32", choices=["float32", "float16"],
                   help="weights and activations (float32: CPU reference; float16: CUDA)")
    p.add_argument("--ops", dest="op_set", default="contrib", choices=["contrib", "standard"],
                   help="contrib: onnxruntime's fused ops (fastest); standard: plain ONNX ops (portable)")
    p.add_argument("--experts", default="auto", choices=["auto", "float", "int8", "int4", "mxfp4"],
                   help="auto (default): int4 for a checkpoint with MXFP4 experts (as gpt-oss is released) when "
                        "exporting contrib ops, float otherwise. "
                        "int8: experts quantized per row, int4: per block of 32 or --block-size (QMoE, contrib ops): "
                        "1/4 or 1/8 of their float bytes; verified exactly against the torch model with the same "
                        "quantized experts, and the difference from the checkpoint's experts is measured and "
                        "written to the manifest. mxfp4: the checkpoint's own MXFP4 bytes in QMoE fp4, verified through "
                        "a CPU twin with the same values in float experts; no onnxruntime provider serves it "
                        "right today (no CPU kernel, wrong results on CUDA), so use int4 for GPUs too")
    p.add_argument("--dense", default="float", choices=["float", "int8", "int4"],
                   help="float (default): the attention projections, the unembedding and the embedding as the "
                        "checkpoint has them. int8 or int4: block-quantized (blocks of 32 or --block-size): MatMulNBits and, for the "
                        "embedding, GatherBlockQuantized (contrib ops), 1/4 or 1/8 of their float bytes, which on "
                        "a CPU are most of the bytes read per token; verified "
                        "exactly like quantized experts, and the difference from the checkpoint is measured. "
                        "Choose int4: onnxruntime's CPU kernel for int8 is slow in float32 and imprecise in float16")
    p.add_argument("--block-size", type=int, default=32, choices=[16, 32, 64, 128],
                   help="inputs sharing one scale in int4 experts and int8/int4 dense weights (default 32). 64 "
                        "holds half the scales: gpt-oss-20b's --dtype float16 --dense int4 export is 0.65 GB smaller "
                        "and decodes faster on a CPU, for a coarser step (measured in docs/performance.md); "
                        "the hidden size and, for what is quantized, the intermediate size and heads x head dim "
                        "must be multiples of it (gpt-oss-20b: 16, 32 or 64)")
    p.add_argument("--int8-activations", action="store_true",
                   help="for the CPU: onnxruntime's 4-bit (and 8-bit) weight kernels quantize the activations to "
                        "int8 (accuracy_level 4): gpt-oss-20b decoded 1.65x to 2.3x faster on 2-core VMs. The graph "
                        "is verified exactly first, then switched, and its difference measured into the manifest")
    p.add_argument("--measure-float16-on-cpu", action="store_true",
                   help="with --dtype float16: also run the float16 graph on this CPU against the torch model, as "
                        "information for the manifest (verification goes through a float32 twin either way; "
                        "minutes at gpt-oss-20b's size)")
    p.add_argument("--max-context", type=int, default=4096, help="longest conversation in tokens (default 4096)")
    p.add_argument("--full-sliding-cache", action="store_true",
                   help="the sliding-window layers keep keys and values for the whole context, as older "
                        "folders do (by default they keep their window only: gpt-oss-20b's KV cache then takes "
                        "half the memory)")
    p.add_argument("--lora", type=Path, help="PEFT LoRA adapter folder to merge into the weights")
    p.add_argument("--force", action="store_true", help="replace OUT_DIR if it exists")
    p.add_argument("--no-verify", action="store_true",
                   help="DANGEROUS: skip the check against the torch model")
    p.set_defaults(run=run_export)


def register_inspect(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("inspect", help="architecture and parameter counts of a checkpoint or model folder",
                       epilog="examples:\n  parley inspect ./gpt-oss-20b\n  parley inspect ./models/blacksmith --json",
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("folder", type=Path, help="Hugging Face checkpoint folder or Parley model folder")
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")
    p.set_defaults(run=run_inspect)


def _need_export_deps() -> None:
    try:
        import onnx  # noqa: F401
        import torch  # noqa: F401
    except ImportError as exc:
        raise CommandFailed(f"export needs the export extra ({exc.name} is missing): "
                            "pip install 'parley-npc[export]'") from exc


def run_export(args: argparse.Namespace) -> int:
    _need_export_deps()
    from export.errors import ExportError
    from export.exporter import ExportOptions, export_model

    opts = ExportOptions(dtype=args.dtype, op_set=args.op_set, max_context=args.max_context,
                         verify=not args.no_verify, lora=args.lora, force=args.force, experts=args.experts,
                         dense=args.dense, int8_activations=args.int8_activations,
                         measure_float16_on_cpu=args.measure_float16_on_cpu,
                         window_cache=not args.full_sliding_cache, block_size=args.block_size)
    try:
        summary = export_model(args.checkpoint, args.out_dir, opts, progress=True)
    except ExportError as exc:
        raise CommandFailed(str(exc)) from exc
    print(format_summary(summary))
    return 0


def format_summary(s) -> str:
    p = s.params
    from export.exporter import quantized_parts

    quantized = quantized_parts(s.experts, s.dense, s.block_size)
    lines = [f"Exported {s.out_dir}",
             f"  parameters   {p.total / 1e6:,.2f}M total, {p.active_per_token / 1e6:,.2f}M active per token",
             f"  graph        {s.op_set} ops, {s.dtype}{f', {quantized}' if quantized else ''}, "
             f"weights {s.graph_bytes / 2**20:,.1f} MiB"]
    if s.experts_choice:
        lines.append(f"  experts      {s.experts}: {s.experts_choice}")
    if s.verification:
        lines.append(f"  {s.verification.summary()}")
    else:
        lines.append("  verification SKIPPED (--no-verify)")
    if s.vs_checkpoint:
        e = s.vs_checkpoint
        lines.append(f"  {quantized or s.dtype} vs the checkpoint's weights: max |logit diff| {e['max_abs_diff_prompt']:.3g} (prompt), "
                     f"{e['max_abs_diff_decode']:.3g} (decode); greedy tokens "
                     f"{'the same' if e['greedy_match'] else 'DIFFER'} over {e['decode_steps']} steps")
    stages = ", ".join(f"{name} {seconds:.1f} s" for name, seconds in s.stages.items())
    lines.append(f"  time         {s.seconds:.1f} s ({stages})" if stages else f"  time         {s.seconds:.1f} s")
    if s.peak_memory_mb is not None:
        lines.append(f"  memory       peak {s.peak_memory_mb:,.0f} MB resident")
    return "\n".join(lines)


def run_inspect(args: argparse.Namespace) -> int:
    from export.errors import CheckpointError
    from runtime.manifest import MANIFEST_FILE, Manifest, ManifestError
    from runtime.model_config import ConfigError

    folder: Path = args.folder
    try:
        if (folder / MANIFEST_FILE).is_file():
            manifest = Manifest.read(folder)
            cfg, kind = manifest.config, f"Parley model folder ({manifest.op_set} ops, {manifest.dtype})"
        elif (folder / "config.json").is_file():
            from export.checkpoint_config import is_original, read_config

            cfg, raw = read_config(folder)
            kind = "checkpoint in OpenAI's original layout" if is_original(raw) else "Hugging Face checkpoint"
        else:
            raise CommandFailed(f"{folder}: neither a model folder (manifest.json) nor a checkpoint (config.json)")
    except (ManifestError, ConfigError, CheckpointError, json.JSONDecodeError) as exc:
        raise CommandFailed(str(exc)) from exc
    from export.param_count import count_params

    counts = count_params(cfg)
    plan = None
    if (folder / MANIFEST_FILE).is_file():
        from runtime.memory_plan import MemoryPlan
        plan = MemoryPlan.for_folder(folder, manifest=manifest)
    exports = None
    if plan is None:
        from export.weight_bytes import serving_estimates
        exports = serving_estimates(cfg, _embedding_is_bfloat16(folder))
    if args.json:
        print(json.dumps({"kind": kind, "config": cfg.to_dict(), "parameters": counts.to_dict(),
                          "memory": None if plan is None else {**plan.__dict__, "batch_kv_bytes": plan.batch_kv_bytes,
                                                               "total_bytes": plan.total_bytes},
                          "exports": exports}, indent=2))
    else:
        print(format_inspect(folder, kind, cfg, counts))
        if plan is not None:
            print("\n  memory to serve it (parley serve's defaults: a decode batch of 8)")
            print("\n".join(f"    {line}" for line in plan.lines()))
        if exports is not None:
            print("\n  memory to serve an export of it (4096-token context, a decode batch of 8; before "
                  "activations)")
            from export.weight_bytes import serving_table
            print("\n".join(serving_table(exports)))
    return 0


def _embedding_is_bfloat16(folder: Path) -> bool:
    """Whether the checkpoint stores its embedding in bfloat16 (read from the safetensors headers only: no
    torch, so that inspect runs on a runtime-only install)."""
    from export.errors import CheckpointError
    from export.safetensors_header import tensor_dtype

    try:
        return tensor_dtype(folder, ("model.embed_tokens.weight", "embedding.weight")) == "BF16"
    except CheckpointError:  # an unreadable checkpoint only loses this detail here; export says what is wrong
        return False


def format_inspect(folder: Path, kind: str, cfg, c) -> str:
    sliding = sum(cfg.is_sliding(i) for i in range(cfg.num_hidden_layers))
    rope = (f"YaRN x{cfg.yarn.factor:g} (theta {cfg.rope_theta:g}, original context "
            f"{cfg.yarn.original_max_position_embeddings})" if cfg.yarn else f"plain (theta {cfg.rope_theta:g})")
    rows = [("embedding", c.embedding), ("unembedding" + (" (tied)" if cfg.tie_word_embeddings else ""),
                                         c.unembedding),
            ("attention", c.attention), ("router", c.router), ("experts (all)", c.experts),
            ("norms", c.norms), ("total", c.total), ("experts (active)", c.experts_active),
            ("active per token", c.active_per_token)]
    out = [f"{folder}: {kind}",
           f"  {cfg.num_hidden_layers} layers ({sliding} sliding-window {cfg.sliding_window}, "
           f"{cfg.num_hidden_layers - sliding} full), hidden {cfg.hidden_size}, vocab {cfg.vocab_size}",
           f"  attention: {cfg.num_attention_heads} query heads, {cfg.num_key_value_heads} kv heads, "
           f"head_dim {cfg.head_dim}, learned sinks; RoPE {rope}",
           f"  experts: {cfg.num_local_experts} SwiGLU experts, top-{cfg.num_experts_per_tok}, "
           f"intermediate {cfg.intermediate_size}, clamp {cfg.swiglu_limit:g}",
           "", f"  {'component':<22}{'parameters':>18}{'share':>9}"]
    for name, n in rows:
        out.append(f"  {name:<22}{n:>18,}{100 * n / c.total:>8.1f}%")
    out.append("  (active per token counts the unembedding but not the embedding lookup, as OpenAI's model card does)")
    return "\n".join(out)
