"""The paired run the bundle-comparison scripts share: two bundles, the same
seeded prompt, then greedy steps of the first bundle's choice fed to both."""

import os
import sys

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "..", "..", "python"))
from qwen_opt import runtime  # noqa: E402


def greedy_pair(dir_a, dir_b, prompt_len, steps, seed, threads):
    """The rows of logits of both bundles (the prompt's, then one per step),
    as lists of float32 arrays."""
    ba, bb = runtime.Bundle(dir_a), runtime.Bundle(dir_b)
    for b in (ba, bb):
        b.set_num_threads(threads)
    prompt = [int(x) for x in np.random.default_rng(seed).integers(0, ba.vocab_size, prompt_len)]
    ctx = prompt_len + steps + 1
    sa, sb = ba.session(ctx), bb.session(ctx)
    ra, rb = list(sa.prefill(prompt)), list(sb.prefill(prompt))
    for _ in range(steps):
        tok = int(np.argmax(ra[-1]))
        ra.append(sa.decode(tok))
        rb.append(sb.decode(tok))
    return ra, rb
