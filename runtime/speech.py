"""The final channel cut into units a game can speak: whole sentences, or tokens as they come.

In sentence units (the default) a delta is one complete sentence, so when a reply has to stop early
(its deadline, its length budget) what was said ends at a sentence's end: the unfinished one is left
unsaid. In token units text goes out as soon as it is decoded, and a reply cut short can end
mid-sentence: the game chose that.
"""
from __future__ import annotations

import re

SENTENCE, TOKEN = "sentence", "token"
UNITS = (SENTENCE, TOKEN)

# A sentence ends at . ! ? or … (any run of them, then closing quotes or brackets) followed by
# whitespace; a line break ends a unit too.
_END = re.compile(r"""[.!?…]+["'”’»)\]]*\s+|\n+""")
_ENDS_A_SENTENCE = re.compile(r"""[.!?…]+["'”’»)\]]*\s*$""")


class Speech:
    def __init__(self, unit: str = SENTENCE):
        if unit not in UNITS:
            raise ValueError(f"stream unit must be one of {UNITS}, got {unit!r}")
        self.unit = unit
        self.pending = ""  # decoded, not yet said

    def add(self, text: str) -> list[str]:
        """More of the answer: the units now complete, in order."""
        if self.unit == TOKEN:
            return [text] if text else []
        self.pending += text
        units, start = [], 0
        for match in _END.finditer(self.pending):
            units.append(self.pending[start:match.end()])
            start = match.end()
        self.pending = self.pending[start:]
        return units

    def finished(self) -> str:
        """The model ended its answer itself: the rest is said, complete or not."""
        rest, self.pending = self.pending, ""
        return rest

    def cut(self) -> tuple[str, int]:
        """The reply stops early: the rest if it ends a sentence, and how many characters stay unsaid."""
        rest, self.pending = self.pending, ""
        if _ENDS_A_SENTENCE.search(rest) or not rest.strip():
            return rest, 0
        return "", len(rest)
