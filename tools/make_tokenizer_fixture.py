#!/usr/bin/env python3
"""Trains a Qwen2-structured byte-level BPE tokenizer.json with the
`tokenizers` package (same normalizer, Split regex, ByteLevel and decoder
config as Qwen2), and writes a varied test corpus.

    make_tokenizer_fixture.py OUT_DIR [--vocab N] [--lines N] [--seed S] [--extra]

writes OUT_DIR/tokenizer.json and OUT_DIR/lines.bin (texts separated by NUL
bytes).  --extra adds added tokens with lstrip/rstrip/single_word/normalized
set, to exercise those paths.  The corpus is also importable: corpus(n, seed).
"""
import argparse
import os
import random
import unicodedata

QWEN2_PATTERN = (r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}"
                 r"| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+")

# text around the --extra added tokens (lstrip/rstrip/single_word/normalized)
EXTRA = ["<think>", "  [LS]", "x [LS]", "[RS]  \n", "[RS]x", "word", "sword", "word_", "a word.", "café", "cafe\u0301"]
SPECIALS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>", "<|vision_start|>",
            "<|vision_end|>", "<|image_pad|>", "<|video_pad|>"]

WORDS = ("the of and to in is you that it he was for on are as with his they I at be this have from "
         "or one had by word but not what all were we when your can said there use an each which she do "
         "how their if will up other about out many then them these so some her would make like him into "
         "time has look two more write go see number no way could people my than first water been call "
         "who oil its now find long down day did get come made may part tokenizer BPE merges Qwen image "
         "édition naïve café résumé Zürich straße İstanbul ıi ſtate Kelvin K ǅemal").split()
CONTRACTIONS = ["don't", "I'm", "you're", "we've", "she'll", "he'd", "it's", "DON'T", "I'M", "YOU'RE",
                "We'Ve", "SHE'LL", "He'D", "It'S", "can'T", "o'clock", "rock'n'roll", "'s", "'t'", "''"]
CJK = ["图像编辑", "我们评估模型的质量", "請把背景換成藍天", "日本語のテキスト", "カタカナとひらがな",
       "한국어 문장입니다", "안녕하세요", "中文，标点。！？", "（括号）【方括号】", "ｆｕｌｌｗｉｄｔｈ　空格",
       "ﾊﾝｶｸ", "𠀀𠀁𪚥", "丂丄丅", "漢字かな交じり文"]
EMOJI = ["😀", "👍🏽", "👨‍👩‍👧‍👦", "🏳️‍🌈", "🧑🏿‍💻", "❤️", "🇯🇵", "👩‍❤️‍💋‍👨", "🤖", "✨", "1️⃣", "🫠",
         "👁️‍🗨️", "🐈‍⬛"]
SCRIPTS = ["Привет мир", "Γειά σου Κόσμε", "مرحبا بالعالم", "שלום עולם", "नमस्ते दुनिया", "สวัสดีชาวโลก",
           "Xin chào thế giới", "ἀρχή", "ﬁnance ﬂow", "Ⅻ Ⅳ ⅷ", "½ ¾ ²³", "١٢٣٤٥", "१२३", "①②③"]
# decomposed forms that NFC composes (e + U+0301, Hangul jamo, Å as A + ring)
DECOMPOSED = ["cafe\u0301", "A\u030angstro\u0308m", "\u1100\u1161\u11a8", "\u1112\u1161\u11ab\u1100\u1173\u11af",
              "n\u0303o", "\u0041\u0308\u0304", "e\u0301\u0301", "\u212b", "\u2126", "\u0915\u093c",
              "\u00c5\u0323", "\u304b\u3099", "\uff76\uff9e"]
CODE = ["def f(x):\n    return x**2 + 1\n", "for (int i = 0; i < n; i++) {\n\tsum += a[i];\n}",
        "if a != b && c >= 0x1F: print(f\"{a!r}\")", "<div class=\"x\">&amp;</div>", "SELECT * FROM t WHERE id=42;",
        "x = [1, 2, 3]  # comment", "fn main() -> Result<(), Box<dyn Error>> { Ok(()) }", "$ ls -la ~/.config",
        "http://example.com/path?q=1&r=%20", "    \n\n    indented", "a\\nb\\tc", "{\"k\": [null, true, 1.5e-3]}"]
SPACES = [" ", "  ", "   ", "\t", "\n", "\r\n", "\n\n", " \n", "\u00a0", "\u3000", "\u2003", "\u0085", "\u2028",
          "\u200b", "\t\t ", " \r\n \r\n", "\f", "\v"]
NUMBERS = ["0", "7", "42", "1234567", "3.14159", "-273.15", "1,000,000", "2026-11-25", "0.5x", "v1.2.3", "100%",
           "1e10", "٣", "²"]


def piece(rng):
    k = rng.random()
    # the word lists by cumulative share (the same draws as an if-chain)
    for upto, words in ((0.30, WORDS), (0.38, CONTRACTIONS), (0.50, CJK), (0.57, EMOJI), (0.64, SCRIPTS),
                        (0.69, DECOMPOSED), (0.76, CODE), (0.86, NUMBERS)):
        if k < upto:
            return rng.choice(words)
    if k < 0.90:
        r = rng.random()
        return rng.choice(SPECIALS) if r < 0.6 else rng.choice(EXTRA) if r < 0.9 else "<|im_start"
    if k < 0.95:
        return "".join(chr(rng.randint(0x20, 0x7e)) for _ in range(rng.randint(1, 6)))
    # a random assigned code point: unassigned ones (as of this Python's
    # Unicode) are left out, since PCRE2 and Oniguruma may know newer tables
    while True:
        c = chr(rng.choice([rng.randint(0xa0, 0x2fff), rng.randint(0x3000, 0xd7ff), rng.randint(0xe000, 0xfffd),
                            rng.randint(0x10000, 0x1faff)]))
        if unicodedata.category(c) != "Cn":
            return c


def line(rng):
    parts = []
    for _ in range(rng.randint(1, 14)):
        parts.append(piece(rng))
        parts.append(rng.choice(SPACES) if rng.random() < 0.35 else " " if rng.random() < 0.8 else "")
    return "".join(parts)


def corpus(n, seed):
    rng = random.Random(seed)
    out = [line(rng) for _ in range(n)]
    # edge cases, always present
    out += ["", " ", "\n", "a", "<|endoftext|>", " <|im_start|> ", "<|im_start|><|im_end|>",
            "x" * 3000, "ab" * 700, "😀" * 50, "  " * 40 + "end", "\r\n" * 30]
    return out


def train(vocab_size, seed, extra):
    from tokenizers import AddedToken, Regex, Tokenizer, decoders, models, normalizers, pre_tokenizers, trainers
    tok = Tokenizer(models.BPE(unk_token=None, fuse_unk=False, byte_fallback=False))
    tok.normalizer = normalizers.NFC()
    tok.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Split(Regex(QWEN2_PATTERN), behavior="isolated", invert=False),
        pre_tokenizers.ByteLevel(add_prefix_space=False, trim_offsets=False, use_regex=False),
    ])
    tok.decoder = decoders.ByteLevel(add_prefix_space=False, trim_offsets=False, use_regex=False)
    tok.post_processor = None
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, min_frequency=2, special_tokens=SPECIALS,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False)
    tok.train_from_iterator(corpus(4000, seed + 1), trainer=trainer)
    if extra:
        tok.add_tokens([AddedToken("<think>", special=False, normalized=False),
                        AddedToken("[LS]", lstrip=True, normalized=False),
                        AddedToken("[RS]", rstrip=True, normalized=False),
                        AddedToken("word", single_word=True, normalized=False),
                        AddedToken("café", normalized=True)])
    return tok


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("out")
    ap.add_argument("--vocab", type=int, default=3000)
    ap.add_argument("--lines", type=int, default=10000)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--extra", action="store_true")
    a = ap.parse_args()
    os.makedirs(a.out, exist_ok=True)
    train(a.vocab, a.seed, a.extra).save(os.path.join(a.out, "tokenizer.json"))
    with open(os.path.join(a.out, "lines.bin"), "wb") as f:
        f.write(b"\0".join(s.encode() for s in corpus(a.lines, a.seed)))


if __name__ == "__main__":
    main()
