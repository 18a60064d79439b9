"""Images with transparency reach the judge as transformers' image
processor makes them (convert_to_rgb: RGBA, LA and palette-with-tRNS
composited onto white, Pillow's alpha_composite arithmetic) and the editor
as PIL's convert("RGB") gives them (the alpha dropped, what diffusers'
Qwen-Image-Edit pipelines take: their VaeImageProcessor keeps four
channels and their VAE takes three, so callers convert first).  Issue 19.

* evalhost.vlm.preprocess on RGBA (every value under every alpha), LA and
  P+tRNS PNGs equals transformers' processor (patches exactly);
* the native judge's probabilities on those images equal transformers'
  within 1e-4 (float32, the dense fixture; reference: explicit forwards over
  every score's path, tools/make_rigged_judge.py);
* the http judge sends the composited pixels (PNG, compared byte for byte
  with Pillow's composite);
* the builtin identity editor returns the alpha-dropped RGB."""
import base64
import io
import json
import os
import subprocess
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import numpy as np
import pytest

from conftest import have_torch
from PIL import Image

from test_native_parity import reorder_tolerance
from test_vlm_parity import patch_tolerance

SRC = os.environ.get("EVALHOST_SRC") or os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
BIN = os.environ.get("EVALHOST_BIN") or os.path.join(SRC, "build", "evalhost")
FIX = os.path.join(SRC, "tests", "data", "qwen3vl", "dense")
sys.path.insert(0, os.path.join(SRC, "tools"))
HAVE_TORCH = have_torch()


def rgba_grid():
    """256x256: every 8-bit value (x) under every alpha (y), three channel patterns."""
    yy, xx = np.mgrid[0:256, 0:256]
    a = np.stack([xx, 255 - xx, (xx * 7) % 256, yy], -1).astype(np.uint8)
    return Image.fromarray(a, "RGBA")


def la_image():
    yy, xx = np.mgrid[0:96, 0:128]
    return Image.fromarray(np.stack([(xx * 2) % 256, (yy * 5 + xx) % 256], -1).astype(np.uint8), "LA")


def palette_trns():
    rng = np.random.default_rng(3)
    idx = rng.integers(0, 16, (80, 112)).astype(np.uint8)
    im = Image.fromarray(idx, "P")
    im.putpalette([int(v) for v in rng.integers(0, 256, 48)])
    alphas = bytes([0, 40, 128, 255] * 4)
    buf = io.BytesIO()
    im.save(buf, "PNG", transparency=alphas)
    return Image.open(io.BytesIO(buf.getvalue()))


def rgba_photo():
    rng = np.random.default_rng(9)
    yy, xx = np.mgrid[0:80, 0:112]
    a = np.stack([(xx * 2) % 256, (yy * 3) % 256, (xx + yy) % 256, (xx * 5 + yy * 3) % 256], -1)
    a = np.clip(a + rng.integers(-20, 20, a.shape), 0, 255).astype(np.uint8)
    return Image.fromarray(a, "RGBA")


IMAGES = {"rgba_grid": rgba_grid, "la": la_image, "palette_trns": palette_trns, "rgba_photo": rgba_photo}


def white_composite(im):
    rgba = im.convert("RGBA")
    return Image.alpha_composite(Image.new("RGBA", rgba.size, (255, 255, 255, 255)), rgba).convert("RGB")


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    d = tmp_path_factory.mktemp("alpha")
    out = {}
    for name, make in IMAGES.items():
        p = d / (name + ".png")
        make().save(p)
        out[name] = p
    return out


def needs_bin():
    if not os.access(BIN, os.X_OK):
        pytest.fail(f"evalhost binary not found at {BIN}")


def run_lua(tmp_path, body, env=None, expect_rc=0):
    needs_bin()
    script = tmp_path / "t.lua"
    script.write_text(body)
    e = dict(os.environ)
    e.update(env or {})
    p = subprocess.run([BIN, str(script)], capture_output=True, text=True, env=e, timeout=300, cwd=SRC)
    assert p.returncode == expect_rc, f"rc {p.returncode}\nstdout:\n{p.stdout}\nstderr:\n{p.stderr}"
    return [json.loads(ln) for ln in p.stdout.splitlines() if ln.strip().startswith("{")], p.stderr


@pytest.mark.parametrize("name", list(IMAGES))
def test_preprocess_composites_like_transformers(files, name, tmp_path):
    from transformers import AutoImageProcessor
    cfg = tmp_path / "preprocessor_config.json"
    # no resize for the 256x256 grid (every value/alpha pair reaches a patch as is)
    cfg.write_text(json.dumps({"size": {"longest_edge": 16777216, "shortest_edge": 4096}, "patch_size": 16,
                               "temporal_patch_size": 2, "merge_size": 2, "image_mean": [0.5, 0.5, 0.5],
                               "image_std": [0.5, 0.5, 0.5], "image_processor_type": "Qwen2VLImageProcessor"}))
    proc = AutoImageProcessor.from_pretrained(str(tmp_path))
    want = proc(images=Image.open(files[name]), return_tensors="np")["pixel_values"].astype(np.float32)
    out = tmp_path / "out.bin"
    needs_bin()
    r = subprocess.run([BIN, os.path.join(SRC, "tests", "e2e", "vlm_dump.lua")], capture_output=True, cwd=SRC,
                       env=dict(os.environ, VLM_IMAGE=str(files[name]), VLM_CONFIG=str(cfg), VLM_OUT=str(out)),
                       timeout=120)
    assert r.returncode == 0, r.stderr.decode(errors="replace")
    head, _, rest = out.read_bytes().partition(b"\n")
    assert not head.startswith(b"ERROR"), head
    rows, dim = map(int, head.split()[4:6])
    got = np.frombuffer(rest, dtype=np.float32).reshape(rows, dim)
    assert got.shape == want.shape
    diff = float(np.abs(got - want).max())
    # and not the alpha-dropped pixels: those differ wherever alpha < 255
    dropped = proc(images=Image.open(files[name]).convert("RGB"), return_tensors="np")["pixel_values"]
    print(f"{name}: max diff {diff:g}; vs alpha dropped {float(np.abs(got - dropped).max()):g}")
    assert diff <= patch_tolerance(proc)   # composited bytes equal, then float32 rescale and normalize
    assert float(np.abs(got - dropped).max()) > 0.1


@pytest.mark.skipif(not HAVE_TORCH, reason="this evalhost was built without libtorch")
@pytest.mark.parametrize("name", ["rgba_photo", "la", "palette_trns"])
def test_native_judge_on_alpha_like_transformers(files, name, tmp_path):
    import torch  # noqa: F401
    import make_rigged_judge as mrj
    from transformers import Qwen3VLForConditionalGeneration
    with open(os.path.join(FIX, "reference.json")) as f:
        ref = json.load(f)
    with open(os.path.join(FIX, "config.json")) as f:
        cfg = json.load(f)
    model = Qwen3VLForConditionalGeneration.from_pretrained(FIX, torch_dtype=torch.float32).eval()
    fast = mrj.fast_tokenizer(os.path.join(FIX, "tokenizer.json"))
    edited = Image.open(files[name])   # transformers converts it (composite onto white)
    original = Image.open(os.path.join(FIX, "original.png"))
    want = mrj.reference(model, fast, cfg, [edited, original], 0, 10, ref["system_prompt"], ref["user_prompt"])
    body = """
local eh = require "evalhost"
local m = assert(eh.model.open({backend = "native", path = os.getenv("FIX"), device = "cpu"}, "judge"))
m:load()
local img = assert(eh.image.load(os.getenv("IMG")))
local r, err = m:score({image = img, original = assert(eh.image.load(os.getenv("FIX") .. "/original.png")),
                        system_prompt = os.getenv("SYS"), user_prompt = os.getenv("USR")})
io.stdout:write(eh.json.encode({channels = img:channels(), score = r and r.score, probs = r and r.probs,
                                error = err}), "\\n")
"""
    (r,), _ = run_lua(tmp_path, body, env={"FIX": FIX, "IMG": str(files[name]), "SYS": ref["system_prompt"],
                                          "USR": ref["user_prompt"]})
    assert r.get("error") is None, r
    assert r["channels"] == 4   # decoded with its alpha (image.keep_alpha defaults to true)
    diff = max(abs(a - b) for a, b in zip(r["probs"], want["probs"]))
    print(f"{name}: score {r['score']:.6f} vs transformers {want['score']:.6f}, max prob diff {diff:.2e}")
    tol_p, tol_score = reorder_tolerance("dense")   # the same fixture, float32 sums in another order
    assert diff <= tol_p
    assert abs(r["score"] - want["score"]) <= tol_score


class Capture(BaseHTTPRequestHandler):
    bodies = []

    def log_message(self, *a):
        pass

    def do_POST(self):
        n = int(self.headers.get("Content-Length", "0"))
        Capture.bodies.append(json.loads(self.rfile.read(n)))
        out = json.dumps({"id": "x", "object": "chat.completion", "created": 0, "model": "m",
                          "choices": [{"index": 0, "finish_reason": "stop",
                                       "message": {"role": "assistant", "content": "Score: 7"}}]}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(out)))
        self.end_headers()
        self.wfile.write(out)


def test_http_judge_sends_composited_pixels(files, tmp_path):
    srv = ThreadingHTTPServer(("127.0.0.1", 0), Capture)
    th = threading.Thread(target=srv.serve_forever, daemon=True)
    th.start()
    Capture.bodies = []
    try:
        body = """
local eh = require "evalhost"
local m = assert(eh.model.open({backend = "http", base_url = os.getenv("URL"), model = "m", image_format = "png",
                                retries = 0, timeout_s = 20}, "judge"))
m:load()
local r, err = m:score({image = assert(eh.image.load(os.getenv("IMG"))),
                        original = assert(eh.image.load(os.getenv("IMG"))), system_prompt = "original",
                        user_prompt = "the original and the edit"})
io.stdout:write(eh.json.encode({score = r and r.score, method = r and r.score_method, error = err}), "\\n")
"""
        (r,), _ = run_lua(tmp_path, body, env={"URL": "http://127.0.0.1:%d" % srv.server_port,
                                              "IMG": str(files["rgba_photo"])})
    finally:
        srv.shutdown()
        srv.server_close()
    assert r["score"] == 7 and r["method"] == "text", r
    assert len(Capture.bodies) == 1
    urls = [p["image_url"]["url"] for msg in Capture.bodies[0]["messages"] if isinstance(msg["content"], list)
            for p in msg["content"] if p["type"] == "image_url"]
    assert urls, Capture.bodies[0]
    want = np.array(white_composite(Image.open(files["rgba_photo"])))
    for u in urls:
        head, _, b64 = u.partition(",")
        assert head == "data:image/png;base64"
        im = Image.open(io.BytesIO(base64.b64decode(b64)))
        assert im.mode == "RGB"
        assert np.array_equal(np.array(im), want)


def test_editor_gets_alpha_dropped(files, tmp_path):
    body = """
local eh = require "evalhost"
local m = assert(eh.model.open({backend = "builtin", name = "identity"}, "editor"))
m:load()
local img = assert(eh.image.load(os.getenv("IMG")))
local out = assert(m:edit(img, "keep it"))
assert(out:save(os.getenv("OUT")))
io.stdout:write(eh.json.encode({channels_in = img:channels(), channels_out = out:channels()}), "\\n")
"""
    out = tmp_path / "edited.png"
    (r,), _ = run_lua(tmp_path, body, env={"IMG": str(files["rgba_photo"]), "OUT": str(out)})
    assert r == {"channels_in": 4, "channels_out": 3}
    assert np.array_equal(np.array(Image.open(out)), np.array(Image.open(files["rgba_photo"]).convert("RGB")))
