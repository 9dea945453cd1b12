"""Python edge of qwen-opt: weight stores, fixtures, references, evaluation."""
