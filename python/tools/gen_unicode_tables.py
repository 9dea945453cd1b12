#!/usr/bin/env python3
"""Generate lib/Runtime/UnicodeTables.inc for the native tokenizer.

The tokenizer (lib/Runtime/Tokenizer.cpp) reproduces Hugging Face `tokenizers`,
which takes its Unicode data from two different places:

  * the pre-tokenizer regex (`\\p{L}`, `\\p{N}`, `\\s`) runs on Oniguruma, whose
    tables follow a recent Unicode (16.0 in tokenizers 0.23);
  * the NFC normalizer is the crate `unicode-normalization-alignments` 0.1.12,
    frozen at Unicode 9.0: characters assigned later have no decomposition and
    combining class 0 there (e.g. NFC leaves "a\\u1DF6\\u0323" alone, where a
    current NFC reorders and composes it).

So the categories come from the newest `unicodedata` at hand (this interpreter,
or --categories-python) and the NFC data from a Unicode 9.0 `unicodedata`
(Python 3.6, via --nfc-python). Both interpreters only need the standard
library; each is asked for its data by running this script with --dump.
No Python has Unicode 16.0 yet: --tokenizers-overlay fills in the code points
that the categories' Unicode leaves unassigned (Cn) with the class that the
installed `tokenizers` gives them (letters and digits of 16.0's new scripts);
an assigned code point always keeps its unicodedata category.

Tables (all sorted, binary-searched by Unicode.cpp):
  kCategoryRanges  {first, last, class}: class bits 1 = \\p{L}, 2 = \\p{N},
                   4 = \\w (Rust regex's: an added token's single_word)
  kWhiteSpaceRanges {first, last}: the White_Space property (Oniguruma's \\s and
                   Rust's char::is_whitespace); not in unicodedata, so listed
                   here (stable since Unicode 6.3, when U+180E left it)
  kCombiningClass  {first, last, ccc} for ccc != 0
  kDecomposition   {code point, first, second (0 for a singleton)}: canonical,
                   one level (applied recursively); Hangul is algorithmic
  kComposition     {first, second, composite}: the primary composites

Usage:
  .venv/bin/python python/tools/gen_unicode_tables.py \\
      --categories-python /path/to/python3.13 --nfc-python /path/to/python3.6 \\
      --tokenizers-overlay -o lib/Runtime/UnicodeTables.inc
  add --check-tokenizers (with `tokenizers` importable) to compare the
  category tables with what the installed tokenizers' regex engine says.
"""

import argparse
import json
import os
import subprocess
import sys

MAX_CP = 0x110000

# The White_Space property (PropList.txt), identical in every Unicode version
# since 6.3.
WHITE_SPACE = [(0x0009, 0x000D), (0x0020, 0x0020), (0x0085, 0x0085),
               (0x00A0, 0x00A0), (0x1680, 0x1680), (0x2000, 0x200A),
               (0x2028, 0x2029), (0x202F, 0x202F), (0x205F, 0x205F),
               (0x3000, 0x3000)]


# What Rust's regex crate calls \w (Alphabetic, M, Nd, Pc, Join_Control),
# which tokenizers uses for an added token's single_word: the general
# categories L, M, Nd, Nl, Pc plus Join_Control and the Other_Alphabetic
# characters outside L and M (circled and squared Latin letters).
WORD_EXTRA = [(0x200C, 0x200D), (0x24B6, 0x24E9), (0x1F130, 0x1F149),
              (0x1F150, 0x1F169), (0x1F170, 0x1F189)]


def dump(what):
    """Runs in the (possibly old) interpreter that owns the data."""
    import unicodedata as ud
    out = {"version": ud.unidata_version}
    if what == "categories":
        cls = []
        unassigned = []
        for cp in range(MAX_CP):
            cat = ud.category(chr(cp))
            c = cat[0]
            v = 1 if c == "L" else 2 if c == "N" else 0
            if (c in "LM" or cat in ("Nd", "Nl", "Pc") or
                    any(a <= cp <= b for a, b in WORD_EXTRA)):
                v |= 4
            cls.append(v)
            if cat == "Cn":
                unassigned.append(cp)
        out["classes"] = cls
        out["unassigned"] = unassigned
    else:
        ccc = {}
        dec = {}
        comp = []
        for cp in range(MAX_CP):
            ch = chr(cp)
            k = ud.combining(ch)
            if k:
                ccc[cp] = k
            d = ud.decomposition(ch)
            if not d or d.startswith("<"):
                continue
            parts = [int(x, 16) for x in d.split()]
            dec[cp] = parts
            # A primary composite: a canonical pair that NFC keeps (neither
            # a composition exclusion nor a non-starter decomposition).
            if len(parts) == 2 and ud.normalize("NFC", ch) == ch:
                comp.append([parts[0], parts[1], cp])
        out["ccc"] = sorted(ccc.items())
        out["decomposition"] = sorted(dec.items())
        out["composition"] = sorted(comp)
    json.dump(out, sys.stdout)


def ask(python, what):
    res = subprocess.run([python, os.path.abspath(__file__), "--dump", what],
                         stdout=subprocess.PIPE, check=True)
    return json.loads(res.stdout.decode("utf-8"))


def ranges(values):
    """[(first, last, value)] for the runs of equal non-zero values."""
    out = []
    start = None
    for cp in range(len(values) + 1):
        v = values[cp] if cp < len(values) else 0
        if start is not None and v != values[start]:
            out.append((start, cp - 1, values[start]))
            start = None
        if start is None and v:
            start = cp
    return out


def probe_tokenizers():
    """\\p{L}, \\p{N} and \\s as the regex engine inside the installed
    `tokenizers` (Oniguruma) sees them, and the \\w that decides an added
    token's single_word (Rust's regex crate): four sets of code points."""
    from tokenizers import Regex, pre_tokenizers

    def probe(pattern):
        # Every code point but the surrogates, separated by nothing; the
        # matched (removed) ones are those missing from the kept pieces.
        cps = [cp for cp in range(MAX_CP) if not 0xD800 <= cp <= 0xDFFF]
        text = "".join(chr(cp) for cp in cps)
        split = pre_tokenizers.Split(Regex(pattern), "removed")
        kept = set()
        for _, (b, e) in split.pre_tokenize_str(text):
            kept.update(range(b, e))
        return {cps[i] for i in range(len(cps)) if i not in kept}

    def probe_word():
        # An added token with single_word is only taken when the character
        # after it is no word character.
        from tokenizers import AddedToken, Tokenizer, models
        tok = Tokenizer(models.BPE(vocab={"a": 0}, merges=[]))
        tok.add_tokens([AddedToken("\x01", single_word=True, normalized=False)])
        cps = [cp for cp in range(MAX_CP)
               if not 0xD800 <= cp <= 0xDFFF and cp != 1]
        text = "".join(" \x01" + chr(cp) for cp in cps)
        enc = tok.encode(text)
        word = set(cps)
        for tid, (b, e) in zip(enc.ids, enc.offsets):
            if tid == 1:
                word.discard(ord(text[e]))
        return word

    return probe(r"\p{L}"), probe(r"\p{N}"), probe(r"\s"), probe_word()


def check_tokenizers(classes, probed):
    """Print where our tables and the installed `tokenizers` disagree."""
    import tokenizers
    letters, numbers, spaces, word = probed
    ws = {cp for a, b in WHITE_SPACE for cp in range(a, b + 1)}
    ours_l = {cp for cp, c in enumerate(classes) if c & 1}
    ours_n = {cp for cp, c in enumerate(classes) if c & 2}
    ours_w = {cp for cp, c in enumerate(classes) if c & 4 and cp != 1}
    print("tokenizers %s: \\p{L} differs at %d, \\p{N} at %d, \\s at %d, "
          "single_word's \\w at %d code points"
          % (tokenizers.__version__, len(letters ^ ours_l),
             len(numbers ^ ours_n), len(spaces ^ ws), len(word ^ ours_w)),
          file=sys.stderr)
    for name, a, b in (("L", letters, ours_l), ("N", numbers, ours_n),
                       ("s", spaces, ws), ("w", word, ours_w)):
        diff = a ^ b
        rs = ranges([1 if cp in diff else 0 for cp in range(MAX_CP)])
        if diff:
            print("  %s: %s" % (name, ", ".join(
                "%04X..%04X" % (f, l) for f, l, _ in rs[:40])), file=sys.stderr)


def emit_rows(lines, rows, fmt, per_line):
    for i in range(0, len(rows), per_line):
        lines.append("    " + " ".join(fmt(r) for r in rows[i:i + per_line]))


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--dump", choices=["categories", "nfc"], help=argparse.SUPPRESS)
    ap.add_argument("--categories-python", default=sys.executable)
    ap.add_argument("--nfc-python", default=sys.executable)
    ap.add_argument("--check-tokenizers", action="store_true",
                    help="report where the tables and the installed tokenizers disagree")
    ap.add_argument("--tokenizers-overlay", action="store_true",
                    help="classify code points that the categories' Unicode leaves "
                    "unassigned as the installed tokenizers does (newer Unicode)")
    ap.add_argument("-o", "--output", default=os.path.join(
        os.path.dirname(__file__), "..", "..", "lib", "Runtime", "UnicodeTables.inc"))
    args = ap.parse_args()
    if args.dump:
        dump(args.dump)
        return

    cats = ask(args.categories_python, "categories")
    nfc = ask(args.nfc_python, "nfc")
    if nfc["version"] != "9.0.0":
        print("warning: NFC data is Unicode %s; tokenizers' NFC uses 9.0.0 "
              "(pass --nfc-python with a Python 3.6)" % nfc["version"], file=sys.stderr)
    classes = cats["classes"]
    overlay = 0
    if args.check_tokenizers or args.tokenizers_overlay:
        import tokenizers
        probed = probe_tokenizers()
        check_tokenizers(classes, probed)
        if args.tokenizers_overlay:
            # Only code points this Unicode has not assigned yet: a category
            # that unicodedata knows is never overridden.
            letters, numbers, _, word = probed
            for cp in cats["unassigned"]:
                c = 1 if cp in letters else 2 if cp in numbers else 0
                if cp in word:
                    c |= 4
                if c:
                    classes[cp] = c
                    overlay += 1
            print("overlay: %d code points unassigned in Unicode %s classified "
                  "by tokenizers %s" % (overlay, cats["version"],
                                        tokenizers.__version__), file=sys.stderr)
            check_tokenizers(classes, probed)

    cat_ranges = ranges(classes)
    ccc_ranges = ranges(_dense(nfc["ccc"]))
    lines = [
        "// Generated by python/tools/gen_unicode_tables.py: do not edit.",
        "// Character classes (\\p{L}, \\p{N}, \\w): Unicode %s%s." % (cats["version"], (
            ",\n// plus %d code points unassigned there, classified as tokenizers %s\n"
            "// does (--tokenizers-overlay)"
            % (overlay, tokenizers.__version__)) if overlay else ""),
        "// NFC (combining classes, decompositions, compositions): Unicode %s."
        % nfc["version"],
        "",
        "#define QWEN_UNICODE_CATEGORY_VERSION \"%s\"" % cats["version"],
        "#define QWEN_UNICODE_NFC_VERSION \"%s\"" % nfc["version"],
        "",
        "// {first, last, class}: bits 1 = \\p{L}, 2 = \\p{N}, 4 = \\w (Rust regex).",
        "static const CategoryRange kCategoryRanges[] = {",
    ]
    emit_rows(lines, cat_ranges, lambda r: "{0x%X, 0x%X, %d}," % r, 4)
    lines += ["};", "", "// {first, last}: White_Space.",
              "static const CodeRange kWhiteSpaceRanges[] = {"]
    emit_rows(lines, WHITE_SPACE, lambda r: "{0x%X, 0x%X}," % r, 5)
    lines += ["};", "", "// {first, last, canonical combining class} for class != 0.",
              "static const CategoryRange kCombiningClass[] = {"]
    emit_rows(lines, ccc_ranges, lambda r: "{0x%X, 0x%X, %d}," % r, 4)
    lines += ["};", "",
              "// {code point, first, second}: canonical decomposition, one level;",
              "// second = 0 for a singleton.",
              "static const Decomposition kDecomposition[] = {"]
    rows = [(cp, p[0], p[1] if len(p) > 1 else 0) for cp, p in nfc["decomposition"]]
    assert all(len(p) <= 2 for _, p in nfc["decomposition"])
    emit_rows(lines, rows, lambda r: "{0x%X, 0x%X, 0x%X}," % r, 4)
    lines += ["};", "", "// {first, second, composite}, sorted by (first, second).",
              "static const Composition kComposition[] = {"]
    emit_rows(lines, [tuple(r) for r in nfc["composition"]],
              lambda r: "{0x%X, 0x%X, 0x%X}," % r, 4)
    lines += ["};", ""]
    with open(args.output, "w", encoding="utf-8") as f:
        f.write("\n".join(lines))
    print("wrote %s: %d category ranges, %d combining-class ranges, %d "
          "decompositions, %d compositions" % (
              args.output, len(cat_ranges), len(ccc_ranges), len(rows),
              len(nfc["composition"])), file=sys.stderr)


def _dense(pairs):
    values = [0] * MAX_CP
    for cp, v in pairs:
        values[cp] = v
    return values


if __name__ == "__main__":
    main()
