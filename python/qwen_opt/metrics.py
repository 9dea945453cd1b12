"""Per-position agreement of two logits arrays [positions, vocab] (the test
scripts that compare a bundle with a reference), and their verdict line."""
import sys

import numpy as np


def log_softmax(x):
    x = np.asarray(x, np.float64)
    m = x.max(-1, keepdims=True)
    return x - m - np.log(np.exp(x - m).sum(-1, keepdims=True))


def kl_rel(ref, test):
    """Per position: KL(softmax(ref) || softmax(test)) (natural log) and
    max |test - ref| / max(1, max |ref|)."""
    lp, lq = log_softmax(ref), log_softmax(test)
    kl = (np.exp(lp) * (lp - lq)).sum(-1)
    ref, test = np.asarray(ref, np.float64), np.asarray(test, np.float64)
    rel = np.abs(test - ref).max(-1) / np.maximum(1.0, np.abs(ref).max(-1))
    return kl, rel


def verdict(bad):
    """Prints "FAIL: <reasons>" and exits 1, or prints PASS."""
    if bad:
        print("FAIL: " + "; ".join(bad))
        sys.exit(1)
    print("PASS")
