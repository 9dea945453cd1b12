#!/usr/bin/env python3
"""Build the tokenizer fixtures in test/fixtures/tokenizer/ with Hugging Face
`tokenizers`, the reference the native tokenizer (lib/Runtime/Tokenizer.cpp)
is checked against. CI does not run this: it only reads what it wrote.

    .venv/bin/pip install tokenizers
    .venv/bin/python python/tools/make_tokenizer_fixtures.py [--corpus] [--train]

Steps (each rewrites its outputs; the default is only the last one):

  --corpus  corpus.txt: a few thousand lines of test text. Hand-written edge
            cases (contractions, white space, CRLF, NFC, emoji, added tokens)
            and random mixes of them, plus text found on a Debian machine:
            licenses, Python and C sources, and the Chinese, Japanese and
            Korean translations in /usr/share/locale.
  --train   {qwen2-style,gpt2-style}/tokenizer.json, trained on that text:
              qwen2-style  Qwen2's normalizer (NFC), pre-tokenizer
                           (Split(Qwen2 regex, Isolated) + ByteLevel without
                           regex), decoder and post-processor, Qwen's added
                           tokens after the vocabulary; merges written as
                           "a b" strings, as Qwen's files have them
              gpt2-style   ByteLevelBPETokenizer (ByteLevel with the GPT-2
                           regex), added tokens with lstrip / rstrip /
                           single_word / normalized; merges as [a, b] pairs,
                           as tokenizers >= 0.20 writes them
  (always)  per tokenizer, from the committed tokenizer.json and corpus.txt:
              expected.ids   encode(line) per line, ids space-separated
              whole.ids      encode(first WHOLE_LINES lines as one text)
              decoded.txt    decode(encode(line)) per line, where that is not
                             normalized.txt (no normalizer, lstrip/rstrip)
              slices.ids / slices.txt
                             runs of ids cut at arbitrary places and their
                             decode (incomplete UTF-8 becomes U+FFFD)
              vocab-size     get_vocab_size(with_added_tokens=True)
            and normalized.txt: the qwen2-style normalizer (NFC) per line,
            which is also qwen2-style's decode(encode(line)).

Lines are split on "\\n" only: a line may end in "\\r" (CRLF text).
"""

import argparse
import glob
import gettext
import gzip
import json
import os
import random
import sys
import unicodedata

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
OUT = os.path.join(ROOT, "test", "fixtures", "tokenizer")
CORPUS = os.path.join(OUT, "corpus.txt")
WHOLE_LINES = 300

QWEN2_REGEX = (r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}|"
               r" ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+")

# Qwen2.5's added tokens (a subset, same flags): special ones, then
# non-special ones, all matched on the raw text (normalized = false).
QWEN_SPECIAL = ["<|endoftext|>", "<|im_start|>", "<|im_end|>",
                "<|object_ref_start|>", "<|vision_pad|>"]
QWEN_ADDED = ["<tool_call>", "</tool_call>", "<|fim_prefix|>",
              "<|fim_middle|>", "<|fim_suffix|>", "<think>", "</think>"]

# --------------------------------------------------------------------------
# Corpus
# --------------------------------------------------------------------------

EDGE_LINES = [
    "",
    " ",
    "   ",
    "\t",
    "\r",
    "Hello world",
    "Hello, world! How's it going?",
    "DON'T STOP. I'M HERE. YOU'RE LATE. WE'VE GONE. THEY'LL COME. HE'D GO. IT'S OK.",
    "don't it's i'm you're we've they'll he'd",
    "Don'T It'S I'm We'Ve They'lL He'D",
    "x'ſ x'ſt can'ſ 'ſ",
    "''s '''t 'x 'S' ' s 'r 're're",
    "rock'n'roll o'clock y'all ma'am",
    "l'homme d'accord qu'il s'il",
    "a  b   c    d     e",
    "trailing spaces   ",
    "   leading spaces",
    "tab\tseparated\tvalues\t\t\tend",
    "\t\tindented with tabs",
    "mixed \t \t white \t space",
    "line with CRLF\r",
    "CR\rin the middle\r\rtwice",
    "ends with space and CR \r",
    "  \r",
    " \t \r",
    "!!!\r",
    "a.\r",
    "1234567890",
    "3.14159 2.71828 1,000,000 1_000 0x1F 1e-9",
    "Phone: +1 (555) 010-9999; ZIP 90210",
    "full-width １２３４５ ＡＢＣ",
    "Arabic-Indic ٠١٢٣٤٥٦٧٨٩ and Devanagari ०१२३",
    "superscripts x² y³ ¼ ½ ¾ Ⅻ ⅷ ①②③",
    "2024-01-15T12:34:56Z",
    "e\u0301 cafe\u0301 re\u0301sume\u0301 A\u030a \u212b \u2126 \u212a",
    "already composed: café résumé Å",
    "a\u0301\u0323 a\u0323\u0301 q\u0307\u0323 \u1e9b\u0323",
    "\u0344 \u0f73 \u0f75 \u0f81 \u0958 \ufb1d \u2adc",
    "\uf900 \uf901 \ufa10 \U0002f800",
    "\u1100\u1161\u11a8 \uac00\u11a8 \u1100\u1161 \ud55c\uad6d\uc5b4",
    "\u0915\u093c \u0929 \u09c7\u09be \u0b47\u0b3e \u0dd9\u0dcf",
    "a\u1df6\u0323 a\u1ac1\u0323 \U00011935\U00011930 a\u0898\u0323",
    "x\U00010d4a\U00010d4b y\U0001e5d0 \U00016d40\U00016d41 \U0001ccf0\U0001ccf1",
    "\u0300 leading combining mark",
    "\u0301\u0301\u0301",
    "<|im_end|>\u0301 after a special token",
    "=\u0338 <\u0338 >\u0338",
    "😀 😃 😄 😁",
    "👍 👍🏻 👍🏼 👍🏽 👍🏾 👍🏿",
    "👨‍👩‍👧‍👦 family, 👩🏽‍💻 coder, 🏳️‍🌈 flag, 🧑🏿‍🤝‍🧑🏻 pair",
    "🇯🇵 🇨🇳 🇺🇸 🇩🇪 flags",
    "1️⃣ 2️⃣ #️⃣ *️⃣ ❤️ ☺︎",
    "emoji😀inside😀words",
    "漢字と仮名が混じった文です。",
    "中文测试：你好，世界！这是一个例子。",
    "繁體中文：請輸入您的密碼。",
    "日本語のテキスト、カタカナ、ひらがな。",
    "한국어 텍스트입니다.",
    "Русский текст, Ελληνικά, עברית, العربية, हिन्दी, ไทย",
    "ＡＢＣ　全角スペース　です",
    "nbsp\u00a0here\u00a0\u00a0twice",
    "nel\u0085here \u0085\u0085 two",
    "ideographic\u3000space\u3000\u3000",
    "line\u2028separator\u2029para",
    "mongolian\u180evowel\u180e\u180e",
    "zero\u200bwidth\u200b\u200bspace \u200d\u200c joiners",
    "bom\ufeffinside",
    "controls \x01\x02 \x1b[31mred\x1b[0m \x7f \x0b \x0c",
    "int main() { return 0; }",
    "    def foo(self, x):  # comment",
    "\tif (x != y && y >= 0) { z += 1; }",
    "print(f\"{x!r:>10}\")  ;;  ->  =>  ::  ...",
    "$ ls -la | grep \"*.txt\" > out.log 2>&1",
    "https://example.com/path?q=1&r=two#frag",
    "user@example.org",
    "```python\r",
    "/* C comment */ // line comment",
    "<|endoftext|>",
    "<|endoftext|><|endoftext|>",
    "<|im_start|>system You are a helpful assistant.<|im_end|>",
    "<|im_start|>user Hello!<|im_end|><|im_start|>assistant Hi.<|im_end|>",
    "text<|im_start|>text",
    " <|im_start|> spaced <|im_end|> ",
    "<|im_start <|im_start| <|im_start|",
    "<<|im_end|>> |<|endoftext|>|",
    "<tool_call>{\"name\": \"f\"}</tool_call>",
    "<think>hmm</think>answer",
    "<|fim_prefix|>def f(<|fim_suffix|>):<|fim_middle|>",
    "<|vision_pad|><|object_ref_start|>",
    "<mask>",
    "a<mask>b",
    "a   <mask>   b",
    "\t<mask>\t",
    "<mask><mask>",
    "x[WORD]y",
    "x [WORD] y",
    "[WORD]",
    "é[WORD]",
    "<nrm>   after",
    "before <nrm>",
    "<nrm><nrm>",
    "<| 分隔 |>中文<| 分隔 |>",
    "def undefined define def",
    "<|endoftext|>def<mask>",
    "a" * 300,
    " " * 200 + "x",
    "ab" * 150,
    "!" * 120,
    "1" * 100,
    "\u00e9" * 80,
    "汉" * 100,
    "😀" * 40,
    "\t" * 30 + "tabs",
]

FRAGMENTS = [
    "the", "The", "THE", "quick", "brown", "fox", "jumps", "over", "lazy",
    "dog", "don't", "DON'T", "it's", "IT'S", "I'm", "we'll", "they've",
    "you're", "she'd", "'s", "'S", "'ll", "'LL",
    "hello", "world", "token", "tokenizer", "compile", "Qwen", "MLIR",
    "42", "3.14", "2024", "007", "1e10", "１２", "٣٤", "²",
    ",", ".", "!", "?", "...", ";", ":", "(", ")", "[", "]", "{", "}",
    "->", "=>", "==", "!=", "<=", ">=", "&&", "||", "::", "#", "@", "$",
    "%", "^", "&", "*", "-", "_", "+", "=", "/", "\\", "|", "`", "~",
    '"', "'", "''", "«", "»", "“", "”", "—", "–", "…", "·", "•",
    " ", "  ", "   ", "    ", "\t", "\t\t", " \t", "\u00a0", "\u3000",
    "\u2009", "\u200b", "\u0085", "\r",
    "e\u0301", "a\u0308", "o\u0302\u0301", "n\u0303", "c\u0327", "A\u030a",
    "u\u0308\u0304", "\u0301", "\u0323\u0302", "i\u0307",
    "\u1100\u1161", "\u1100\u1161\u11a8", "\uac00\u11a8", "\u1112\u1161\u11ab",
    "café", "naïve", "Ångström", "São Paulo", "Zürich", "Kraków", "İstanbul",
    "汉字", "中文", "测试", "你好", "世界", "漢字", "日本語", "東京",
    "ひらがな", "カタカナ", "です", "ます", "한국어", "서울",
    "Привет", "мир", "Γειά", "σου", "שלום", "مرحبا", "नमस्ते", "สวัสดี",
    "😀", "😂", "🤖", "🚀", "👍🏽", "👋🏿", "👨‍💻", "👩‍👩‍👧", "🏳️‍🌈",
    "❤️", "✔️", "🇫🇷", "🇧🇷", "🧑🏾‍🚀", "🫠", "🥲",
    "<|endoftext|>", "<|im_start|>", "<|im_end|>", "<think>", "</think>",
    "<tool_call>", "<mask>", "[WORD]", "<nrm>", "<| 分隔 |>", "def",
    "<|im_start", "im_end|>", "<|", "|>", "<", ">",
    "x\U00010d4a", "\U00011f04", "\U0001e5d0",
    "snake_case", "camelCase", "PascalCase", "kebab-case", "SCREAMING_CASE",
    "foo()", "bar[0]", "baz.qux", "a->b", "std::vector<int>", "0xDEADBEEF",
]


def read_text(path):
    if path.endswith(".gz"):
        with gzip.open(path, "rt", encoding="utf-8", errors="replace") as f:
            return f.read()
    with open(path, encoding="utf-8", errors="replace") as f:
        return f.read()


def source_lines(kind):
    """Lines of local text of one kind, in a fixed order."""
    if kind == "prose":
        paths = sorted(glob.glob("/usr/share/common-licenses/*"))
        paths += ["/usr/share/doc/python3/python-policy.txt.gz"]
    elif kind == "code":
        paths = sorted(glob.glob("/usr/lib/python3.11/*.py"))[:60]
        paths += sorted(glob.glob("/usr/include/*.h"))[:60]
    else:
        paths = []
    lines = []
    for p in paths:
        if os.path.isfile(p):
            lines += read_text(p).split("\n")
    if kind == "cjk":
        for lang in ("zh_CN", "zh_TW", "ja", "ko"):
            for mo in sorted(glob.glob("/usr/share/locale/%s/LC_MESSAGES/*.mo"
                                       % lang)):
                try:
                    with open(mo, "rb") as f:
                        cat = gettext.GNUTranslations(f)._catalog
                except Exception:
                    continue
                for key in sorted(cat, key=str):
                    if key and isinstance(cat[key], str):
                        lines += cat[key].split("\n")
        for p in sorted(glob.glob(os.path.join(
                os.path.dirname(os.__file__), "test", "cjkencodings",
                "*-utf8.txt"))):
            lines += read_text(p).split("\n")
    return [l for l in lines if l.strip()]


def random_line(rng):
    n = rng.randint(1, 14)
    parts = []
    for _ in range(n):
        f = rng.choice(FRAGMENTS)
        parts.append(f)
        r = rng.random()
        if r < 0.55:
            parts.append(" ")
        elif r < 0.6:
            parts.append(rng.choice(["  ", "\t", "\r", " \r", "\u00a0"]))
    line = "".join(parts)
    if rng.random() < 0.1:
        line += "\r"
    return line


def nfc_line(rng):
    """Bases and combining marks in any order (canonical reordering and
    composition), Hangul jamo, singletons and exclusions."""
    bases = "aeiouAEIOUcnsyzkwq<>=ṡ\u0391\u03b1\u0415\u0438\u05d0\u0627\u0915\u0b47\u0dd9\u1025" \
            "\u1100\u1161\u11a8\uac00\uac01\u212b\u2126\uf900\u0344\u0f71\u0f72"
    marks = ["\u0300", "\u0301", "\u0302", "\u0303", "\u0308", "\u030a",
             "\u0323", "\u0327", "\u0328", "\u0338", "\u0345", "\u05b4",
             "\u0654", "\u093c", "\u0b3e", "\u0dca", "\u0dcf", "\u102e",
             "\u1df6", "\u1ac1", "\u0898", "\u302a", "\u3099", "\u309a",
             "\U0001e944", "\u0f72", "\u0f74", "\u0f80"]
    out = []
    for _ in range(rng.randint(1, 8)):
        out.append(rng.choice(bases))
        for _ in range(rng.choice([0, 1, 1, 2, 3])):
            out.append(rng.choice(marks))
        if rng.random() < 0.3:
            out.append(" ")
    return "".join(out)


def make_corpus():
    rng = random.Random(20240611)
    prose = source_lines("prose")
    code = source_lines("code")
    cjk = source_lines("cjk")
    lines = list(EDGE_LINES)
    lines += [random_line(rng) for _ in range(700)]
    lines += [nfc_line(rng) for _ in range(300)]
    for src, count in ((prose, 700), (code, 700), (cjk, 600)):
        picked = sorted(rng.sample(range(len(src)), min(count, len(src))))
        for i in picked:
            line = src[i][:300]
            if rng.random() < 0.05:
                line += "\r"
            lines.append(line)
    rng.shuffle(lines[len(EDGE_LINES):])
    for l in lines:
        assert "\n" not in l
    with open(CORPUS, "w", encoding="utf-8", newline="") as f:
        f.write("".join(l + "\n" for l in lines))
    print("corpus: %d lines, %d bytes" % (len(lines), os.path.getsize(CORPUS)))


def read_corpus():
    with open(CORPUS, encoding="utf-8", newline="") as f:
        text = f.read()
    assert text.endswith("\n")
    return text[:-1].split("\n")


# --------------------------------------------------------------------------
# Training
# --------------------------------------------------------------------------

def training_text():
    rng = random.Random(7)
    texts = source_lines("prose") + source_lines("code") + source_lines("cjk")
    texts += [random_line(rng) for _ in range(3000)]
    return texts


def train_qwen2_style(texts):
    from tokenizers import (AddedToken, Regex, Tokenizer, decoders, models,
                            normalizers, pre_tokenizers, processors, trainers)
    tok = Tokenizer(models.BPE())
    tok.normalizer = normalizers.NFC()
    tok.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Split(Regex(QWEN2_REGEX), behavior="isolated",
                             invert=False),
        pre_tokenizers.ByteLevel(add_prefix_space=False, trim_offsets=False,
                                 use_regex=False),
    ])
    tok.decoder = decoders.ByteLevel(add_prefix_space=False,
                                     trim_offsets=False, use_regex=False)
    tok.post_processor = processors.ByteLevel(add_prefix_space=False,
                                              trim_offsets=False,
                                              use_regex=False)
    trainer = trainers.BpeTrainer(
        vocab_size=2000, min_frequency=2, show_progress=False,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tok.train_from_iterator(texts, trainer)
    tok.add_special_tokens([AddedToken(t, special=True, normalized=False)
                            for t in QWEN_SPECIAL])
    tok.add_tokens([AddedToken(t, special=False, normalized=False)
                    for t in QWEN_ADDED])
    path = os.path.join(OUT, "qwen2-style", "tokenizer.json")
    tok.save(path, pretty=False)
    # Qwen's files spell merges "a b" (tokenizers < 0.20); keep that form.
    with open(path, encoding="utf-8") as f:
        data = json.load(f)
    data["model"]["merges"] = [" ".join(m) if isinstance(m, list) else m
                               for m in data["model"]["merges"]]
    # decoders.ByteLevel() takes no options and writes true for all three;
    # Qwen's file has false (decoding does not look at them).
    data["decoder"] = {"type": "ByteLevel", "add_prefix_space": False,
                       "trim_offsets": False, "use_regex": False}
    write_json(path, data)


def train_gpt2_style(texts):
    from tokenizers import AddedToken, ByteLevelBPETokenizer
    tok = ByteLevelBPETokenizer()
    tok.train_from_iterator(texts, vocab_size=1000, min_frequency=2,
                            special_tokens=["<|endoftext|>"],
                            show_progress=False)
    tok.add_special_tokens([AddedToken("<mask>", lstrip=True, special=True)])
    tok.add_tokens([
        AddedToken("[WORD]", single_word=True, normalized=False),
        AddedToken("<nrm>", rstrip=True, normalized=True),
        AddedToken("<| 分隔 |>", normalized=False),
        # Already in the model's vocabulary: keeps the model's id.
        AddedToken("def", normalized=False),
    ])
    tok.save(os.path.join(OUT, "gpt2-style", "tokenizer.json"), pretty=False)


def write_json(path, data):
    text = json.dumps(data, ensure_ascii=False, separators=(",", ":"))
    with open(path, "w", encoding="utf-8") as f:
        f.write(text)
        f.write("\n")


# --------------------------------------------------------------------------
# Expected outputs
# --------------------------------------------------------------------------

def write_lines(path, lines):
    with open(path, "w", encoding="utf-8", newline="") as f:
        f.write("".join(l + "\n" for l in lines))


def expected(name, lines, rng):
    from tokenizers import Tokenizer
    d = os.path.join(OUT, name)
    tok = Tokenizer.from_file(os.path.join(d, "tokenizer.json"))
    encs = [tok.encode(l).ids for l in lines]
    write_lines(os.path.join(d, "expected.ids"),
                [" ".join(map(str, ids)) for ids in encs])
    whole = "".join(l + "\n" for l in lines[:WHOLE_LINES])
    write_lines(os.path.join(d, "whole.ids"),
                [" ".join(map(str, tok.encode(whole).ids))])
    decoded = [tok.decode(ids, skip_special_tokens=False) for ids in encs]
    norm = tok.normalizer
    normalized = [norm.normalize_str(l) if norm else l for l in lines]
    mismatched = [i + 1 for i, (n, t) in enumerate(zip(normalized, decoded))
                  if t != n]
    if norm:
        # The round trip is checked against normalized.txt: it must hold.
        assert not mismatched, "decode(encode(x)) != NFC(x) on lines %s" % mismatched
    else:
        write_lines(os.path.join(d, "decoded.txt"), decoded)
    # Slices of the ids of lines with multi-byte characters: decoding a cut
    # through a character gives U+FFFD.
    slices = []
    for ids, l in zip(encs, lines):
        if len(ids) > 3 and any(ord(c) > 0x7F for c in l) and rng.random() < 0.3:
            a = rng.randrange(0, len(ids) - 1)
            b = rng.randrange(a + 1, len(ids) + 1)
            slices.append(ids[a:b])
    slices.append(list(range(0, tok.get_vocab_size(), 7)))  # every 7th id
    slices.append([tok.get_vocab_size() + 5, 0])  # an id that is no token
    texts = [tok.decode(s, skip_special_tokens=False) for s in slices]
    keep = [i for i, t in enumerate(texts) if "\n" not in t]
    write_lines(os.path.join(d, "slices.ids"),
                [" ".join(map(str, slices[i])) for i in keep])
    write_lines(os.path.join(d, "slices.txt"), [texts[i] for i in keep])
    write_lines(os.path.join(d, "vocab-size"),
                [str(tok.get_vocab_size(with_added_tokens=True))])
    print("%s: %d lines, %d tokens, vocab %d; %d slices; decode(encode(x)) != "
          "normalize(x) on lines %s" % (
              name, len(lines), sum(map(len, encs)),
              tok.get_vocab_size(with_added_tokens=True), len(keep),
              mismatched))
    return tok


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--corpus", action="store_true", help="rewrite corpus.txt")
    ap.add_argument("--train", action="store_true",
                    help="retrain the two tokenizer.json files")
    args = ap.parse_args()
    os.makedirs(os.path.join(OUT, "qwen2-style"), exist_ok=True)
    os.makedirs(os.path.join(OUT, "gpt2-style"), exist_ok=True)
    if args.corpus:
        make_corpus()
    if args.train:
        texts = training_text()
        train_qwen2_style(texts)
        train_gpt2_style(texts)
    lines = read_corpus()
    rng = random.Random(99)
    qwen = expected("qwen2-style", lines, rng)
    expected("gpt2-style", lines, rng)
    normalized = [qwen.normalizer.normalize_str(l) for l in lines]
    write_lines(os.path.join(OUT, "normalized.txt"), normalized)
    differ = [i + 1 for i, (l, n) in enumerate(zip(lines, normalized))
              if unicodedata.normalize("NFC", l) != n]
    print("tokenizers' NFC (Unicode 9.0) differs from unicodedata's (%s) on "
          "lines %s" % (unicodedata.unidata_version, differ))
    total = 0
    for root, _, files in os.walk(OUT):
        total += sum(os.path.getsize(os.path.join(root, f)) for f in files)
    print("fixtures: %d bytes in %s" % (total, os.path.relpath(OUT, ROOT)))


if __name__ == "__main__":
    sys.exit(main())
