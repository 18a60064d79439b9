"""run.device_memory: a device of a given capacity simulated on the CPU,
with the job's real footprints (tools/make_real_shape.py --footprints:
Qwen-Image-Edit-2509 57.7 GB and Qwen3-VL-30B-A3B 62.1 GB in bfloat16)
standing in as the two builtin models' footprint_mb.

  80 GB   the two-stage schedule over 5 categories swaps: 2C-1 = 9 exchanges
  141 GB  keep_both: auto keeps both: 0 exchanges
  40 GB   the editor's load fails naming it, its footprint and the capacity;
          the run stops resumably and --resume after raising the capacity
          finishes it
  a forward that runs out of memory (activation_mb past what is free)
          fails its batch with that message; the second such batch stops
          the run, and --resume retries those pairs

Environment: EVALHOST_BIN (default build/evalhost), EVALHOST_SRC (repo root).
"""
import glob
import json
import os
import subprocess
import sys

import pytest
from PIL import Image

SRC = os.environ.get("EVALHOST_SRC") or os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
BIN = os.environ.get("EVALHOST_BIN") or os.path.join(SRC, "build", "evalhost")
PY = os.path.join(SRC, ".venv", "bin", "python")
CATEGORIES = ["c1", "c2", "c3", "c4", "c5"]


@pytest.fixture(scope="module")
def footprints():
    """The full models' bfloat16 bytes, from the real configs through
    transformers' and diffusers' classes (meta device: nothing allocated)."""
    py = PY if os.access(PY, os.X_OK) else sys.executable
    probe = subprocess.run([py, "-c", "import torch, transformers, diffusers"], capture_output=True)
    if probe.returncode:
        pytest.skip("make_real_shape.py needs torch, transformers and diffusers (tools/requirements.txt)")
    r = subprocess.run([py, os.path.join(SRC, "tools", "make_real_shape.py"), "--footprints"], capture_output=True,
                       text=True, timeout=600)
    assert r.returncode == 0, r.stderr
    m = json.loads(r.stdout)["models"]
    return m["qwen-image-edit-2509"]["bytes"], m["qwen3-vl-30b-a3b"]["bytes"]


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    d = tmp_path_factory.mktemp("devmem")
    img = d / "a.png"
    Image.new("RGB", (48, 32), (120, 40, 200)).save(img)
    doc = {c: {"data_pairs": [{"id": "p%d" % i, "image_path": "a.png", "edit_instruction": "brighten",
                               "original_description": "a test picture"} for i in range(4)]} for c in CATEGORIES}
    path = d / "bench.json"
    path.write_text(json.dumps(doc))
    return str(path)


def config(tmp_path, data, footprints, capacity, judge_extra=""):
    ed, jd = footprints
    path = tmp_path / "c.yaml"
    out = tmp_path / "out"
    path.write_text(
        "benchmark: {data_path: %s}\n"
        "editor: {backend: builtin, name: identity, footprint_mb: %.3f}\n"
        "judge: {backend: builtin, name: metrics, footprint_mb: %.3f%s}\n"
        "run: {out: %s, keep_both: auto, device_memory: %s}\n"
        "report: {bootstrap: {resamples: 50}}\n" % (json.dumps(data), ed / 1e6, jd / 1e6, judge_extra,
                                                     json.dumps(str(out)), capacity))
    return str(path), str(out)


def run(cfg, *args):
    return subprocess.run([BIN, os.path.join(SRC, "scripts", "two_stage.lua"), cfg, *args], capture_output=True,
                          text=True, timeout=300)


def report(out):
    files = glob.glob(os.path.join(out, "results", "evaluation_report_*.json"))
    assert len(files) == 1, files
    with open(files[0], encoding="utf-8") as f:
        return json.load(f)


def journal(out):
    with open(os.path.join(out, "journal.jsonl"), encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


def test_real_footprints(footprints):
    ed, jd = footprints
    assert round(ed / 1e9, 1) == 57.7 and round(jd / 1e9, 1) == 62.1


def test_80gb_swaps_nine_times(binary, data, footprints, tmp_path):
    cfg, out = config(tmp_path, data, footprints, "80GB")
    r = run(cfg)
    assert r.returncode == 0, r.stderr
    rep = report(out)
    assert rep["swaps"]["count"] == 9
    assert "keep_both=auto: judge needs" in r.stderr and "free on cpu: swapping" in r.stderr, r.stderr
    assert all(p["score"] is not None for p in rep["pairs"]) and len(rep["pairs"]) == 20


def test_141gb_keeps_both(binary, data, footprints, tmp_path):
    cfg, out = config(tmp_path, data, footprints, "141GB")
    r = run(cfg)
    assert r.returncode == 0, r.stderr
    assert report(out)["swaps"]["count"] == 0
    assert "keeping both resident" in r.stderr


def test_40gb_load_fails_by_name_and_resumes(binary, data, footprints, tmp_path):
    cfg, out = config(tmp_path, data, footprints, "40GB")
    r = run(cfg)
    assert r.returncode == 1, r.stderr
    assert ("editor (identity): cannot move to cpu: out of memory: the model's footprint is 57.7 GB, the device's "
            "capacity 40.0 GB (run.device_memory), 0 B of it in use by other models") in r.stderr, r.stderr
    assert "run the same command with --resume" in r.stderr
    assert not glob.glob(os.path.join(out, "results", "evaluation_report_*.json"))
    # nothing was recorded against a pair: the journal holds its header only
    assert all(e.get("stage") in (None, "run") for e in journal(out)), journal(out)
    r = run(cfg, "--resume", "--set", "run.device_memory=80GB")
    assert r.returncode == 0, r.stderr
    rep = report(out)
    assert len(rep["pairs"]) == 20 and all(p["score"] is not None for p in rep["pairs"])


def test_out_of_memory_in_the_forward(binary, data, footprints, tmp_path):
    # 141 GB with both resident leaves 21.2 GB: a batch of 2 at 15 GB each does not fit
    cfg, out = config(tmp_path, data, footprints, "141GB", ", batch_size: 2, activation_mb: 15000")
    r = run(cfg)
    assert r.returncode == 1, r.stderr
    msg = ("judge: out of memory in the forward: a batch of 2 needs 30.0 GB of activations, 21.2 GB free of the "
           "device's 141.0 GB (run.device_memory); a smaller batch_size fits")
    assert msg in r.stderr, r.stderr
    assert "judge: out of memory in 2 calls in a row" in r.stderr
    failed = [e for e in journal(out) if e.get("stage") == "score"]
    # the first batch's two pairs failed with the message; the second stopped the run
    assert len(failed) == 2 and all(e["record"]["code"] == "ENOMEM" and msg in e["record"]["error"] for e in failed), failed
    assert not glob.glob(os.path.join(out, "results", "evaluation_report_*.json"))
    # a device with room: resume retries the pairs that ran out of memory
    r = run(cfg, "--resume", "--set", "run.device_memory=200GB")
    assert r.returncode == 0, r.stderr
    rep = report(out)
    assert len(rep["pairs"]) == 20 and all(p["score"] is not None for p in rep["pairs"]), rep["failures"]


def test_bad_capacity_is_refused(binary, data, footprints, tmp_path):
    cfg, _ = config(tmp_path, data, footprints, "lots")
    r = run(cfg)
    assert r.returncode != 0
    assert "run.device_memory must be a size such as 80GB" in r.stderr, r.stderr
