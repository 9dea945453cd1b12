"""Prints how many of each model-level op an .mlir file holds."""
import re
import sys

text = open(sys.argv[1]).read()
counts = {op: len(re.findall(rf"= qwen\.{op} ", text))
          for op in ("embedding", "linear", "rms_norm", "silu_mul", "add", "logits")}
line = " ".join(f"{k}={v}" for k, v in counts.items())
tied = len(re.findall(r"qwen\.logits [^\n]*\{tied\}", text))
line += f" tied={tied}" if tied else ""
# Appended after the original keys so existing expectations stay prefixes.
extra = {op: len(re.findall(rf"= qwen\.{op} ", text)) for op in ("rope", "attention")}
print(line + "".join(f" {k}={v}" for k, v in extra.items()))
