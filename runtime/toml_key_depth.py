"""How many parts the longest dotted key of a TOML text has, found before tomllib reads it.

tomllib's memory grows with the square of a dotted key's length: one 160 KB line `a.a.a. ... .b = 1`
(80,000 parts, well under the profile size limit) took a server past 20 GB and the kernel killed it; a
table header as long stalls it for seconds. Nothing a designer writes needs more than a few parts, so
parsing is refused above a small bound, in one pass over the text, before tomllib allocates anything.
"""
from __future__ import annotations

import re

MAX_KEY_PARTS = 32
_BARE = re.compile(r"[A-Za-z0-9_+-]+")  # a bare key, or a number's digits (a float's "1.5" reads as two parts)


def _string_end(text: str, i: int) -> int:
    """The index after the string starting at text[i] (a quote), or len(text) if it never ends. Basic
    strings ("...", triple-quoted too) skip escapes as TOML does, so an escaped quote never ends one."""
    quote = text[i]
    triple = text.startswith(quote * 3, i)
    j, n = i + (3 if triple else 1), len(text)
    while j < n:
        c = text[j]
        if c == "\\" and quote == '"':
            j += 2
        elif c == quote and (not triple or text.startswith(quote * 3, j)):
            if not triple:
                return j + 1
            j += 3
            for _ in range(2):  # up to two more quotes belong to the content: """a"""""
                if j < n and text[j] == quote:
                    j += 1
            return j
        elif c == "\n" and not triple:
            return j  # a single-line string cannot hold a line break: tomllib refuses the file
        else:
            j += 1
    return n


def longest_dotted_run(text: str) -> tuple[int, int]:
    """(parts, line) of the longest run of dot-separated keys (bare or quoted) outside strings and
    comments. Every dotted key or table header is such a run, so this bounds their depth; numbers and
    quoted values outside keys count too, which only ever makes the bound stricter than it need be."""
    best, best_line, line = 0, 1, 1
    parts, after_dot, run_line = 0, False, 1
    i, n = 0, len(text)
    while i < n:
        c = text[i]
        if c in "\"'":
            end = _string_end(text, i)
            line += text.count("\n", i, end)
            token_end = end
        elif (m := _BARE.match(text, i)) is not None:
            token_end = m.end()
        else:
            token_end = -1
        if token_end >= 0:  # a key part (or a value) ends here
            if not after_dot:
                parts, run_line = 0, line
            parts += 1
            if parts > best:
                best, best_line = parts, run_line
            after_dot = False
            i = token_end
            continue
        if c == ".":
            after_dot = parts > 0
        elif c == "#":
            end = text.find("\n", i)
            i = n if end < 0 else end
            continue
        elif c == "\n":
            line += 1
            after_dot, parts = False, 0
        elif c not in " \t":
            after_dot, parts = False, 0
        i += 1
    return best, best_line
