"""Tiny random gpt-oss checkpoints, saved by transformers exactly as a studio's fine-tune would be."""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import torch

HARMONY_SPECIALS = ["<|startoftext|>", "<|endoftext|>", "<|return|>", "<|constrain|>", "<|channel|>",
                    "<|start|>", "<|end|>", "<|message|>", "<|call|>"]

CORPUS = [
    "<|start|>system<|message|>You are a blacksmith in the village of Ashford.<|end|>",
    "<|start|>user<|message|>How much for a sword?<|end|>",
    "<|start|>assistant<|channel|>analysis<|message|>The player asks about prices.<|end|>",
    "<|start|>assistant<|channel|>final<|message|>Forty silver, and worth every coin.<|return|>",
    "Reasoning: low medium high. The guard watches the gate; the innkeeper pours ale.",
    "Greetings, traveller! The road north is dangerous after dark. Rumours of wolves.",
]


def train_tokenizer(path: Path, vocab_size: int = 400) -> int:
    """A byte-level BPE with the harmony special tokens; returns its vocabulary size."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=HARMONY_SPECIALS,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tok.train_from_iterator(CORPUS * 20, trainer)
    tok.save(str(path))
    return tok.get_vocab_size()


@dataclass(frozen=True)
class TinySpec:
    hidden: int = 64
    layers: int = 4
    heads: int = 4
    kv_heads: int = 2
    head_dim: int = 16
    experts: int = 4
    top_k: int = 2
    intermediate: int = 64
    window: int = 5
    tie: bool = False
    seed: int = 0
    layer_types: tuple[str, ...] | None = None
    extra: dict = field(default_factory=dict)


def hf_config(spec: TinySpec, vocab: int):
    from transformers import GptOssConfig

    layer_types = list(spec.layer_types or
                       ["sliding_attention" if i % 2 == 0 else "full_attention" for i in range(spec.layers)])
    return GptOssConfig(
        vocab_size=vocab, hidden_size=spec.hidden, intermediate_size=spec.intermediate,
        num_hidden_layers=spec.layers, num_attention_heads=spec.heads, num_key_value_heads=spec.kv_heads,
        head_dim=spec.head_dim, num_local_experts=spec.experts, num_experts_per_tok=spec.top_k,
        sliding_window=spec.window, layer_types=layer_types, max_position_embeddings=4096,
        tie_word_embeddings=spec.tie,
        rope_parameters={"rope_type": "yarn", "factor": 32.0, "beta_fast": 32.0, "beta_slow": 1.0,
                         "truncate": False, "original_max_position_embeddings": 4096,
                         "rope_theta": 150000.0},
        **spec.extra,
    )


def randomize(model, seed: int) -> None:
    """Non-zero everything, with experts large enough that the SwiGLU clamp is exercised."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith("sinks"):
                std = 1.0
            elif "experts.gate_up_proj" in name and not name.endswith("bias"):
                std = 0.5
            elif "layernorm" in name or name.endswith("norm.weight"):
                p.copy_(1.0 + 0.2 * torch.randn(p.shape, generator=g))
                continue
            elif name.endswith("bias"):
                std = 0.1
            else:
                std = 0.15
            p.copy_(std * torch.randn(p.shape, generator=g))


def make_checkpoint(folder: Path, spec: TinySpec) -> Path:
    from transformers import GptOssForCausalLM

    folder.mkdir(parents=True, exist_ok=True)
    vocab = train_tokenizer(folder / "tokenizer.json")
    torch.manual_seed(spec.seed)
    model = GptOssForCausalLM(hf_config(spec, vocab)).eval()
    randomize(model, spec.seed)
    model.save_pretrained(folder)
    (folder / "tokenizer_config.json").write_text(json.dumps({"model_max_length": 4096}))
    return folder


def load_hf(folder: Path):
    """transformers' own model from the folder: the independent oracle."""
    from transformers import GptOssForCausalLM

    return GptOssForCausalLM.from_pretrained(folder, dtype=torch.float32,
                                             attn_implementation="eager",
                                             experts_implementation="eager").eval()


def load_hf_float64(folder: Path):
    """transformers' model in float64, its RMSNorm computing in float64 too: the same math, with the one
    float32 cast that transformers keeps inside a float64 model widened (its RoPE tables stay float32, as
    the reference's and the graph's do)."""
    from transformers.models.gpt_oss.modeling_gpt_oss import GptOssRMSNorm

    def wide_norm(self, x):
        x = x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + self.variance_epsilon)
        return self.weight * x

    hf = load_hf(folder).to(torch.float64)
    for module in hf.modules():
        if isinstance(module, GptOssRMSNorm):
            module.forward = wide_norm.__get__(module)
    return hf


def make_scripted_checkpoint(folder: Path, successors: dict[str, str], seed: int = 0) -> Path:
    """A gpt-oss checkpoint whose greedy next token depends only on the current one, as `successors`
    (token strings of the tiny tokenizer, specials included) says: attention and experts write nothing
    to the residual stream, so the logits are the unembedding of the token's own embedding, and each
    listed successor's unembedding row points along its predecessors' embeddings. A model that does
    exactly what a test needs, through the real export and runtime."""
    from tokenizers import Tokenizer
    from transformers import GptOssForCausalLM

    folder.mkdir(parents=True, exist_ok=True)
    vocab = train_tokenizer(folder / "tokenizer.json")
    tok = Tokenizer.from_file(str(folder / "tokenizer.json"))
    spec = TinySpec(layers=2, seed=seed)
    torch.manual_seed(seed)
    model = GptOssForCausalLM(hf_config(spec, vocab)).eval()
    randomize(model, seed)
    with torch.no_grad():
        for layer in model.model.layers:
            layer.self_attn.o_proj.weight.zero_()
            layer.self_attn.o_proj.bias.zero_()
            layer.mlp.experts.down_proj.zero_()
            layer.mlp.experts.down_proj_bias.zero_()
            layer.input_layernorm.weight.fill_(1.0)
            layer.post_attention_layernorm.weight.fill_(1.0)
        model.model.norm.weight.fill_(1.0)
        embed = model.model.embed_tokens.weight
        model.lm_head.weight.zero_()
        for token, successor in successors.items():
            t, s = tok.token_to_id(token), tok.token_to_id(successor)
            assert t is not None and s is not None, f"{token!r} and {successor!r} must be single tokens"
            model.lm_head.weight[s] += 10.0 * embed[t] / embed[t].norm()
    model.save_pretrained(folder)
    (folder / "tokenizer_config.json").write_text(json.dumps({"model_max_length": 4096}))
    return folder


def graph_vs_transformers(session, hf, prompt: int = 6) -> float:
    """Max |logit diff| between a model folder's session and a transformers model on the same random
    ids (longer than twice the sliding window): a `prompt`-token prefill, then one token at a time
    through the KV cache, against transformers' logits at every one of those positions."""
    import numpy as np

    cfg = session.config
    ids = np.random.default_rng(0).integers(0, cfg.vocab_size, size=(1, 2 * cfg.sliding_window + 4))
    with torch.no_grad():
        expected = hf(torch.from_numpy(ids)).logits[0].numpy()
    cache = session.new_cache(length=32)
    got = [session.run(ids[:, :prompt], cache)[0]]
    got += [session.run(ids[:, t:t + 1], cache)[0] for t in range(prompt, ids.shape[1])]
    return float(np.abs(np.stack(got) - expected[prompt - 1:]).max())


def make_mxfp4_twins(root: Path) -> tuple[Path, Path]:
    """An MXFP4 checkpoint (root/mxfp4), and a float32 twin (root/twin) holding exactly its dequantized
    experts."""
    from export.mxfp4_checkpoint import round_to_mxfp4

    return round_to_mxfp4(make_checkpoint(root / "plain", TinySpec(seed=7)), root)


def make_lora_adapter(root: Path):
    """A tiny base checkpoint (root/base), a PEFT LoRA adapter for it on the attention projections and the
    experts (root/adapter, large enough to change the answer), and PEFT's own merged model, the oracle:
    (base, adapter, merged)."""
    from peft import LoraConfig, get_peft_model

    base = make_checkpoint(root / "base", TinySpec(seed=11))
    torch.manual_seed(0)
    config = LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "k_proj", "v_proj", "o_proj"],
                        target_parameters=["mlp.experts.gate_up_proj", "mlp.experts.down_proj"],
                        init_lora_weights=False)
    peft_model = get_peft_model(load_hf(base), config)
    with torch.no_grad():  # make the adapter large enough to change the answer
        for name, p in peft_model.named_parameters():
            if "lora_" in name:
                p.mul_(3.0)
    peft_model.save_pretrained(root / "adapter")
    merged = peft_model.merge_and_unload().eval()
    return base, root / "adapter", merged
