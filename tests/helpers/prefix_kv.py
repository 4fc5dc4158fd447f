"""Whether the KV an engine keeps for an NPC prefix is that prefix's own: a turn run after it gives the
logits of prefix and turn run at once (however the prefix was run: whole, in pieces, as a reply's start)."""
from __future__ import annotations

import numpy as np

from runtime import harmony


def kept_prefix_error(engine, prefix: list[int]) -> float:
    """The largest logit difference between a turn run on the kept prefix and prefix and turn run at once."""
    s = engine.session
    rest = harmony.message(engine.tok, "user", "Player: hi there") + harmony.assistant_open(engine.tok)
    cold = s.run(np.array([prefix + rest]), s.new_cache(length=512))
    warm = s.new_cache(length=512)
    warm.copy_rows_from(engine.prefixes.kept(tuple(prefix)), len(prefix))
    return float(np.abs(s.run(np.array([rest]), warm) - cold).max())
