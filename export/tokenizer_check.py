"""Read the harmony special-token ids from a checkpoint's tokenizer.json (never hard-coded)."""
from __future__ import annotations

from pathlib import Path

from export.errors import CheckpointError
from runtime.harmony_tokens import OPTIONAL, REQUIRED


def special_token_ids(tokenizer_file: Path, vocab_size: int) -> dict[str, int]:
    from tokenizers import Tokenizer

    try:
        tok = Tokenizer.from_file(str(tokenizer_file))
    except Exception as exc:  # tokenizers raises a bare Exception on a malformed file
        raise CheckpointError(f"{tokenizer_file}: cannot load tokenizer ({exc})") from exc
    specials = {t.content for t in tok.get_added_tokens_decoder().values() if t.special}
    ids: dict[str, int] = {}
    for name in REQUIRED + OPTIONAL:
        token_id = tok.token_to_id(name)
        if token_id is None:
            if name in REQUIRED:
                raise CheckpointError(
                    f"{tokenizer_file}: has no '{name}' token; the harmony chat format needs "
                    f"{', '.join(REQUIRED)} as special tokens")
            continue
        if name not in specials:
            raise CheckpointError(f"{tokenizer_file}: '{name}' is not marked special; player text could "
                                  "produce it, so the tokenizer must declare it as a special added token")
        if token_id >= vocab_size:
            raise CheckpointError(f"{tokenizer_file}: '{name}' has id {token_id}, beyond the model's "
                                  f"vocab_size {vocab_size}")
        ids[name] = token_id
    return ids
