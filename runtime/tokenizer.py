"""The model folder's tokenizer, split into two doors: plain text and harmony structure.

Player text, game state and NPC persona only ever pass through `text()`, which
tokenizes special-token strings as ordinary characters; special tokens enter a
prompt only through `special()`, which the harmony renderer calls by name.
"""
from __future__ import annotations

from pathlib import Path

from tokenizers import Tokenizer

from runtime.manifest import Manifest


class HarmonyTokenizer:
    def __init__(self, folder: Path, manifest: Manifest):
        self._plain = Tokenizer.from_file(str(Path(folder) / manifest.tokenizer_file))
        self._plain.encode_special_tokens = True  # "<|end|>" typed by a player is just text
        self._decoder = Tokenizer.from_file(str(Path(folder) / manifest.tokenizer_file))
        self.ids = dict(manifest.special_tokens)
        self.special_ids = frozenset(self.ids.values()) | frozenset(
            t_id for t_id, t in self._decoder.get_added_tokens_decoder().items() if t.special)

    def special(self, name: str) -> int:
        return self.ids[name]

    def text(self, s: str) -> list[int]:
        ids = self._plain.encode(s, add_special_tokens=False).ids
        if self.special_ids.intersection(ids):
            # Cannot happen with encode_special_tokens set; guard the invariant anyway.
            raise AssertionError("plain-text encoding produced a special token")
        return ids

    def decode(self, ids: list[int]) -> str:
        return self._decoder.decode(ids, skip_special_tokens=False)

    def decode_text(self, ids: list[int]) -> str:
        return self._decoder.decode(ids, skip_special_tokens=True)
