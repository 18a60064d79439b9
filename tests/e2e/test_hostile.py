"""Hostile inputs (issue 11): every file under tests/data/hostile/ goes
through the built binary (tests/e2e/hostile_probe.lua feeds it to the host
the way a schedule would) and must give its expected error: exit code 1
with the message below on stderr — never a signal, never a hang (timeout),
never silence, never a sanitizer report.  Every file in the folder must have
a row here, so a new hostile file cannot go unrun."""
import base64
import io
import json
import os
import pathlib
import signal
import subprocess
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from PIL import Image

from conftest import BIN, SRC

HOSTILE = SRC / "tests" / "data" / "hostile"
PROBE = SRC / "tests" / "e2e" / "hostile_probe.lua"
TIMEOUT = 60

# (file under tests/data/hostile, substring of stderr): exit code 1; or
# OK + substring of stdout: the input is accepted (exit 0), as it should be.
OK = "OK:"
EXPECTED = [
    # images: limits checked from the header, before any allocation
    ("images/header_100000x100000.png", "image 100000x100000 exceeds image.max_pixels (64000000)"),
    ("images/side_70000x1.png", "image 70000x1 exceeds image.max_side (65535)"),
    ("images/sides_overflow.png", "image 3718438918x3236244336 exceeds image.max_pixels (64000000)"),
    ("images/sof_65500x65500.jpg", "image 65500x65500 exceeds image.max_pixels (64000000)"),
    ("images/idat_claims_2gb.png", "truncated PNG (chunk IDAT of 2147483632 bytes runs past the end"),
    ("images/truncated.png", "truncated PNG"),
    ("images/zero_bytes.png", "not an image (empty, 0 bytes)"),
    ("images/html_named.png", "not an image (first bytes 3c 21 44 4f 43 54 59 50)"),
    ("images/zero_width.png", "image has no pixels (0x5 in the header)"),
    ("images/truncated.jpg", "JPEG"),
    ("images/jpeg_magic_only.jpg", "image has no pixels (0x0 in the header)"),
    ("images/bmp_1Mx1M.bmp", "corrupt BMP (header gives 1048576x-1048576)"),
    ("images/gif_header_only.gif", "corrupt GIF (header gives 0x0)"),
    ("images/webp_truncated.webp", "truncated WebP"),
    ("images/riff_not_webp.webp", "not an image (first bytes 52 49 46 46"),
    # base64 text as a benchmark or a server holds it
    ("b64/bad_char.txt", "bad base64 at offset 40 (invalid character)"),
    ("b64/truncated.txt", "bad base64 at offset 97"),
    ("b64/data_url_not_base64.txt", "bad base64 at offset 0 (data URL without ;base64,)"),
    ("b64/only_padding.txt", "bad base64 at offset 0 (misplaced padding)"),
    # benchmarks: a broken file fails to open naming file:line:col ...
    ("datasets/truncated.json", "truncated.json:1:251: unterminated string (truncated?)"),
    ("datasets/not_json.json", "not_json.json:1:1: not a benchmark"),
    ("datasets/empty.json", "empty.json:1:1: empty file (no benchmark)"),
    ("datasets/number_root.json", "number_root.json:1:1: not a benchmark"),
    ("datasets/deep_nesting.json", "nesting deeper than 64 (limits.max_json_depth)"),
    ("datasets/trailing_garbage.json", "data after the top-level value"),
    ("datasets/nul_in_file.json", "nul_in_file.json:1:194: unexpected character"),
    ("datasets/garbage_lines.jsonl", "garbage_lines.jsonl:2:13: control character 0x0a in string"),
    # ... a bad pair is reported by category, id and index, and the rest go on
    ("datasets/unsafe_ids.json", "cat/../../escape (#1): unsafe id (not usable as a file name)"),
    ("datasets/duplicate_ids.json", "cat/pair_001 (#2): duplicate id (first at #1)"),
    ("datasets/missing_fields.json", 'cat/pair_001 (#1): missing field "edit_instruction"'),
    ("datasets/bad_base64.json", "cat/pair_001 (#1): image:"),
    ("datasets/non_image_b64.json", "cat/pair_001 (#1): image: not an image (first bytes 3c 68 74 6d 6c 3e"),
    ("datasets/huge_header_b64.json", "cat/pair_001 (#1): image: image 100000x100000 exceeds image.max_pixels"),
    ("datasets/invalid_utf8.json", 'cat/pair_001 (#1): "edit_instruction" is not valid UTF-8'),
    ("datasets/lone_surrogate.json", 'cat/pair_001 (#1): "edit_instruction" is not valid UTF-8'),
    ("datasets/image_path_escape.json", 'image path "../../../../etc/passwd" escapes the dataset folder (refused)'),
    ("datasets/id_too_long.json", "id is 300 bytes, over limits.max_string.id (256)"),
    ("datasets/unsafe_category.json", "../../outside/pair_001 (#1): unsafe category name"),
    ("datasets/wrong_types.json", 'cat/pair_001 (#1): "edit_instruction" is not a string'),
    # configs: data, never code; limits on nesting and aliases; typos named
    ("configs/billion_laughs.yaml", "alias expansion exceeds limits.max_yaml_nodes (1000000 nodes)"),
    ("configs/deep_nesting.yaml", "deep_nesting.yaml:1:69: nesting deeper than limits.max_yaml_depth (64)"),
    ("configs/python_tag.yaml", "unsupported tag 'tag:yaml.org,2002:python/object/apply:os.system'"),
    ("configs/lua_tag.yaml", "unsupported tag '!lua' (configs are data"),
    ("configs/misspelled_section.yaml", "unknown top-level key 'jugde' (did you mean 'judge'?)"),
    ("configs/list_root.yaml", "list_root.yaml:1:1: a config must be a mapping of sections"),
    ("configs/scalar_root.yaml", "scalar_root.yaml:1:1: a config must be a mapping of sections"),
    ("configs/binary_garbage.yaml", "binary_garbage.yaml:1:1: control characters are not allowed"),
    ("configs/invalid_utf8.yaml", "invalid_utf8.yaml:2:9: invalid leading UTF-8 octet"),   # line 2, the 9th character
    ("configs/tab_indent.yaml", "tab_indent.yaml:2:1: found character that cannot start any token"),
    ("configs/duplicate_key.yaml", "duplicate_key.yaml:2:1: duplicate key 'run' (first at line 1)"),
    ("configs/recursive_alias.yaml", "recursive_alias.yaml:1:15: unknown alias '*r'"),
    ("configs/unclosed_flow.yaml", "unclosed_flow.yaml:2:1: did not find expected ',' or ']'"),
    # tokenizer.json files
    ("tokenizers/not_json.json", "not_json.json: not valid JSON"),
    ("tokenizers/deep_nesting.json", "deep_nesting.json: not valid JSON"),
    ("tokenizers/wordpiece.json", "model WordPiece is not supported (only BPE)"),
    ("tokenizers/merge_unknown_token.json", "merge 0 (a zz) uses a token missing from the vocab"),
    ("tokenizers/negative_id.json", 'vocab entry "a" has a bad id'),
    ("tokenizers/huge_id.json", 'vocab entry "a" has a bad id'),
    ("tokenizers/bad_regex.json", "pre_tokenizer Split regex rejected by PCRE2 at offset 9"),
    ("tokenizers/no_model.json", "no model object"),
    # judge server replies (served by a one-reply loopback server)
    ("replies/no_score.json", 'judge reply has no score in 0..10: "The picture shows a cat. I cannot rate it."'),
    ("replies/score_out_of_range.json", 'judge reply has no score in 0..10 (found 11): "Score: 11"'),
    ("replies/score_negative.json", 'judge reply has no score in 0..10: "Score: -3"'),
    ("replies/only_thinking.json", 'judge reply has no score in 0..10: "<think>Score: 9, clearly</think>"'),
    ("replies/long_digits.json", 'judge reply has no score in 0..10: "Score: 555555'),
    ("replies/malformed.json", "malformed JSON reply from"),
    ("replies/login_page.html", "has content type 'text/html', not JSON: \"<html><body><h1>Please sign in"),
    ("replies/empty_choices.json", 'reply has no choices[0].message.content: "{"choices": []}"'),
    ("replies/content_null.json", 'reply has no choices[0].message.content: "{"id": "x"'),
    ("replies/content_number.json", 'reply has no choices[0].message.content: "{"id": "x"'),
    ("replies/deep_nesting.json", 'malformed JSON reply from http://127.0.0.1:'),
    ("replies/empty_body.json", 'malformed JSON reply from http://127.0.0.1:'),
    # accepted: the text holds a score; logprobs that make no sense are ignored, not trusted
    ("replies/logprobs_garbage.json", OK + "score 7"),
]

KIND = {"images": "image", "b64": "b64", "datasets": "dataset", "tokenizers": "tokenizer",
        "configs": "config", "replies": "reply"}


def picture_b64():
    b = io.BytesIO()
    Image.new("RGB", (32, 24), (10, 200, 30)).save(b, "PNG")
    return base64.b64encode(b.getvalue()).decode()


class OneReply:
    """A loopback server that answers every request with one file's bytes."""

    def __init__(self, body, ctype):
        outer = self

        class H(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *a):
                pass

            def do_POST(self):
                self.rfile.read(int(self.headers.get("Content-Length", 0)))
                outer.requests += 1
                self.send_response(200)
                self.send_header("Content-Type", ctype)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            do_GET = do_POST

        self.requests = 0
        self.srv = ThreadingHTTPServer(("127.0.0.1", 0), H)
        self.url = "http://127.0.0.1:%d/v1" % self.srv.server_address[1]
        self.t = threading.Thread(target=self.srv.serve_forever, daemon=True)

    def __enter__(self):
        self.t.start()
        return self

    def __exit__(self, *a):
        self.srv.shutdown()
        self.srv.server_close()


def run_probe(config, kind, path, env=None):
    e = dict(os.environ)
    e.update(env or {})
    try:
        r = subprocess.run([str(BIN), str(PROBE), str(config), kind, str(path)], cwd=SRC, capture_output=True,
                           text=True, errors="replace", timeout=TIMEOUT, env=e)
    except subprocess.TimeoutExpired:
        pytest.fail("%s: hung (no exit in %d s)" % (path, TIMEOUT))
    return r


def check_outcome(r, rel, needle):
    assert r.returncode >= 0, "%s: killed by signal %s\n%s" % (rel, signal.Signals(-r.returncode).name, r.stderr)
    assert "Sanitizer" not in r.stderr and "runtime error" not in r.stderr, "%s:\n%s" % (rel, r.stderr)
    if needle.startswith(OK):
        assert r.returncode == 0, "%s: exit %d, expected 0\n%s" % (rel, r.returncode, r.stderr)
        assert needle[len(OK):] in r.stdout, "%s: expected %r in stdout:\n%s" % (rel, needle, r.stdout)
        return
    assert r.returncode == 1, "%s: exit %d, expected 1\n%s%s" % (rel, r.returncode, r.stdout, r.stderr)
    assert "traceback" not in r.stderr, "%s: bad data raised a script error\n%s" % (rel, r.stderr)
    assert needle in r.stderr, "%s: expected %r in stderr:\n%s" % (rel, needle, r.stderr)


def test_every_hostile_file_has_an_expectation():
    files = sorted(str(p.relative_to(HOSTILE)) for p in HOSTILE.rglob("*") if p.is_file() and p.suffix != ".py")
    listed = sorted(f for f, _ in EXPECTED)
    assert files == listed
    assert len(files) >= 40


@pytest.mark.parametrize("rel, needle", EXPECTED, ids=[f for f, _ in EXPECTED])
def test_hostile(rel, needle, tmp_path):
    path = HOSTILE / rel
    kind = KIND[rel.split("/")[0]]
    if kind == "config":
        r = run_probe(path, "config", path)
        check_outcome(r, rel, needle)
        assert "config accepted" not in r.stdout
        assert not pathlib.Path("/tmp/evalhost_pwned").exists()
        return
    cfg = tmp_path / "probe.yaml"
    if kind != "reply":
        cfg.write_text("run: {out: %s}\n" % json.dumps(str(tmp_path / "out")))
        check_outcome(run_probe(cfg, kind, path), rel, needle)
        return
    ctype = "text/html" if path.suffix == ".html" else "application/json"
    with OneReply(path.read_bytes(), ctype) as srv:
        judge = {"backend": "http", "base_url": srv.url, "model": "m", "retries": 0, "timeout_s": 10,
                 "connect_timeout_s": 2}
        cfg.write_text("judge: %s\nscript: %s\n" % (json.dumps(judge), json.dumps({"image_b64": picture_b64()})))
        r = run_probe(cfg, "reply", path)
        check_outcome(r, rel, needle)
        if not needle.startswith(OK):
            assert "score " not in r.stdout      # an unreadable reply is never a score (not even 0)
        assert srv.requests >= 1


# ---- limits: each config key at its limit (accepted) and one past (refused,
# the message naming the key), through the binary so the config plumbing is
# tested too -----------------------------------------------------------------

def probe_with(tmp_path, sets, kind, path, config_text=None):
    cfg = tmp_path / "limits.yaml"
    cfg.write_text(config_text or "run: {out: %s}\n" % json.dumps(str(tmp_path / "out")))
    args = []
    for s in sets:
        args += ["--set", s]
    e = dict(os.environ)
    r = subprocess.run([str(BIN), str(PROBE), str(cfg), *args, kind, str(path)], cwd=SRC, capture_output=True,
                       text=True, errors="replace", timeout=TIMEOUT, env=e)
    assert r.returncode in (0, 1), r.stderr
    assert "Sanitizer" not in r.stderr and "runtime error" not in r.stderr, r.stderr
    return r


def at_and_past(tmp_path, key, limit, kind, path, needle):
    ok = probe_with(tmp_path, ["%s=%d" % (key, limit)], kind, path)
    assert ok.returncode == 0, "%s=%d should accept:\n%s" % (key, limit, ok.stderr)
    bad = probe_with(tmp_path, ["%s=%d" % (key, limit - 1)], kind, path)
    assert bad.returncode == 1, "%s=%d should refuse" % (key, limit - 1)
    assert needle % (limit - 1) in bad.stderr, bad.stderr


@pytest.fixture
def png_7x5(tmp_path):
    p = tmp_path / "img.png"
    Image.new("RGB", (7, 5), (1, 2, 3)).save(p)
    return p


def test_limit_image_max_pixels(tmp_path, png_7x5):
    at_and_past(tmp_path, "image.max_pixels", 35, "image", png_7x5, "image 7x5 exceeds image.max_pixels (%d)")


def test_limit_image_max_side(tmp_path, png_7x5):
    at_and_past(tmp_path, "image.max_side", 7, "image", png_7x5, "image 7x5 exceeds image.max_side (%d)")


def test_limit_max_b64_len(tmp_path, png_7x5):
    text = tmp_path / "img.b64"
    text.write_bytes(base64.b64encode(png_7x5.read_bytes()))
    n = len(text.read_bytes())
    at_and_past(tmp_path, "limits.max_b64_len", n, "b64", text, "exceeds limits.max_b64_len (%d)")


def bench_file(tmp_path, ids, instruction="make it red", depth=0):
    p = tmp_path / "bench.json"
    pairs = [{"id": i, "original_image_b64": picture_b64(), "edit_instruction": instruction,
              "extra": json.loads("[" * depth + "]" * depth) if depth else 0} for i in ids]
    p.write_text(json.dumps({"cat": {"data_pairs": pairs}}))
    return p


def test_limit_max_pairs(tmp_path):
    p = bench_file(tmp_path, ["a", "b", "c"])
    at_and_past(tmp_path, "limits.max_pairs", 3, "dataset", p, "more than %d pairs (limits.max_pairs)")


def test_limit_max_json_depth(tmp_path):
    # {cat: {data_pairs: [ {extra: [[[[[ ]]]]] } ]}}: 4 levels above the 5 of extra
    p = bench_file(tmp_path, ["a"], depth=5)
    at_and_past(tmp_path, "limits.max_json_depth", 9, "dataset", p, "nesting deeper than %d (limits.max_json_depth)")


def test_limit_max_string_id(tmp_path):
    p = bench_file(tmp_path, ["x" * 40])
    at_and_past(tmp_path, "limits.max_string.id", 40, "dataset", p, "id is 40 bytes, over limits.max_string.id (%d)")


def test_limit_max_string_instruction(tmp_path):
    p = bench_file(tmp_path, ["a"], instruction="y" * 100)
    at_and_past(tmp_path, "limits.max_string.instruction", 100, "dataset", p,
                '"edit_instruction" is 100 bytes, over limits.max_string.instruction (%d)')


def test_limit_max_tokenizer_input(tmp_path):
    tok = SRC / "tests" / "fuzz" / "corpus" / "tokenizer" / "qwen2_small.json"
    n = len("Replace the sky <|im_start|> 图像 café".encode())   # the sentence hostile_probe.lua encodes
    at_and_past(tmp_path, "limits.max_tokenizer_input", n, "tokenizer", tok,
                "exceeds limits.max_tokenizer_input (%d)")


def test_limit_max_http_body(tmp_path):
    body = json.dumps({"choices": [{"index": 0, "message": {"role": "assistant", "content": "Score: 6"}}]}).encode()
    with OneReply(body, "application/json") as srv:
        judge = {"backend": "http", "base_url": srv.url, "model": "m", "retries": 0, "timeout_s": 10}
        text = "judge: %s\nscript: %s\n" % (json.dumps(judge), json.dumps({"image_b64": picture_b64()}))
        ok = probe_with(tmp_path, ["limits.max_http_body=%d" % len(body)], "reply", "-", text)
        assert ok.returncode == 0 and "score 6" in ok.stdout, ok.stderr
        bad = probe_with(tmp_path, ["limits.max_http_body=%d" % (len(body) - 1)], "reply", "-", text)
        assert bad.returncode == 1
        assert "over limits.max_http_body (%d bytes)" % (len(body) - 1) in bad.stderr, bad.stderr


def test_json_encode_raising_midway_frees_its_partial_tree(tmp_path):
    """Found by test-asan: json.encode of a value holding a function raised
    after building part of the tree and leaked it (LeakSanitizer failed the
    run at exit).  Under `make test-asan` this fails on any leak; in every
    build it checks the error and that encoding still works afterwards."""
    script = tmp_path / "enc.lua"
    script.write_text("""
local h = evalhost
for i = 1, 200 do
  local ok, err = pcall(h.json.encode, {a = {1, 2, {x = "y", f = print}}, b = string.rep("z", 100), i = i})
  assert(not ok and err:find("json.encode: cannot encode a function", 1, true), err)
end
print(h.json.encode({k = {1, 2, 3}, s = "t"}))
return 0
""")
    r = subprocess.run([str(BIN), str(script)], cwd=SRC, capture_output=True, text=True, timeout=TIMEOUT)
    assert "LeakSanitizer" not in r.stderr, r.stderr
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == '{"k":[1,2,3],"s":"t"}'


SCRIPT_RAISING_MID_STAGE = """
local schedule = require "evalhost.schedule"
return schedule.main("two_stage", function(run)
  for i, cat in ipairs(run.categories) do
    run:edit_all(cat)
    if i == 2 and os.getenv("EH_TEST_BOOM") then error("boom in the middle of a stage") end
    run:score_all(cat)
  end
end)
"""


def test_script_error_mid_stage_leaves_a_resumable_journal(tmp_path):
    """A Lua error in a user script half-way through a stage: exit 2 with a
    traceback, the journal replays, and --resume finishes with the same
    scores as a run that was never interrupted."""
    script = tmp_path / "boom.lua"
    script.write_text(SCRIPT_RAISING_MID_STAGE)
    cfg = SRC / "config" / "example.yaml"

    def run(out, *args, boom=False):
        env = dict(os.environ)
        env.pop("EH_TEST_BOOM", None)
        if boom:
            env["EH_TEST_BOOM"] = "1"
        return subprocess.run([str(BIN), str(script), str(cfg), "--quiet", "--set", "run.out=%s" % out, *args],
                              cwd=SRC, capture_output=True, text=True, timeout=300, env=env)

    def scores(out):
        (name,) = [n for n in os.listdir(out / "results") if n.startswith("evaluation_report_") and n.endswith(".json")]
        rep = json.loads((out / "results" / name).read_text())
        return sorted((p["category"], p["id"], p["score"]) for p in rep["pairs"])

    r = run(tmp_path / "a", boom=True)
    assert r.returncode == 2, r.stderr
    assert "boom in the middle of a stage" in r.stderr and "traceback" in r.stderr
    lines = (tmp_path / "a" / "journal.jsonl").read_text().splitlines()
    assert len(lines) > 1 and all(json.loads(line) for line in lines)   # every line whole
    r = run(tmp_path / "a", "--resume")
    assert r.returncode == 0, r.stderr
    r = run(tmp_path / "b")
    assert r.returncode == 0, r.stderr
    assert scores(tmp_path / "a") == scores(tmp_path / "b")
