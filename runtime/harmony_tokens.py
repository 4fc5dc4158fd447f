"""The harmony format's special tokens, by name. Their ids come from each model's tokenizer."""
from __future__ import annotations

REQUIRED = ("<|start|>", "<|end|>", "<|message|>", "<|channel|>", "<|return|>")
OPTIONAL = ("<|startoftext|>", "<|endoftext|>", "<|constrain|>", "<|call|>")
