"""Containment (issue 11): output paths built from ids and categories stay
inside the output folder.  Ids like "../x" or "/etc/passwd" are refused per
pair (the run goes on); a symlink planted in the output folder (a category
folder, results/, an image file, journal.jsonl) is refused or replaced,
never followed.  Each test runs the real two_stage schedule with the builtin
models and then walks the whole temporary tree: every file the run made is
under run.out, and the decoy folders and files outside are untouched."""
import base64
import io
import json
import os
import shutil
import subprocess

import pytest
from PIL import Image

from conftest import BIN, SRC

TIMEOUT = 300


def png_b64(seed):
    b = io.BytesIO()
    Image.new("RGB", (24, 16), (seed * 40 % 256, 90, 200 - seed)).save(b, "PNG")
    return base64.b64encode(b.getvalue()).decode()


def write_bench(path, pairs_by_cat):
    data = {cat: {"data_pairs": [{"id": pid, "original_image_b64": png_b64(i), "edit_instruction": "make it brighter"}
                                 for i, pid in enumerate(ids)]} for cat, ids in pairs_by_cat.items()}
    path.write_text(json.dumps(data, ensure_ascii=False))


def write_config(tmp, bench, categories):
    cfg = tmp / "cfg.yaml"
    cfg.write_text("benchmark: {data_path: %s, categories: %s}\n"
                   "editor: {backend: builtin, name: imageops}\n"
                   "judge: {backend: builtin, name: metrics}\n"
                   "run: {out: %s}\n" % (json.dumps(str(bench)), json.dumps(categories, ensure_ascii=False),
                                         json.dumps(str(tmp / "out"))))
    return cfg


def two_stage(cfg, *args):
    r = subprocess.run([str(BIN), str(SRC / "scripts" / "two_stage.lua"), str(cfg), "--quiet", *args], cwd=SRC,
                       capture_output=True, text=True, timeout=TIMEOUT)
    assert r.returncode in (0, 1, 2), r.stderr          # never a signal
    assert "Sanitizer" not in r.stderr and "runtime error" not in r.stderr, r.stderr
    return r


def snapshot(root):
    """{relative path: (kind, size or link target)} of everything under root."""
    out = {}
    for d, dirs, files in os.walk(root):
        for n in dirs + files:
            p = os.path.join(d, n)
            rel = os.path.relpath(p, root)
            if os.path.islink(p):
                out[rel] = ("link", os.readlink(p))
            elif os.path.isdir(p):
                out[rel] = ("dir", None)
            else:
                with open(p, "rb") as f:
                    out[rel] = ("file", f.read())
    return out


def made_outside(before, after):
    """Paths that appeared or changed outside out/."""
    return sorted(k for k, v in after.items()
                  if not (k == "out" or k.startswith("out" + os.sep)) and before.get(k) != v)


def report(out):
    (name,) = [n for n in os.listdir(out / "results") if n.startswith("evaluation_report_") and n.endswith(".json")]
    return json.loads((out / "results" / name).read_text())


def test_hostile_ids_stay_inside(tmp_path):
    bench = tmp_path / "bench.json"
    bad = ["../x", "../../escaped", "/etc/passwd", "a/../../b", "..", ".", "", "nul\x00", "sub/dir"]
    write_bench(bench, {"cat": ["good_1"] + bad + ["good_2"]})
    cfg = write_config(tmp_path, bench, ["cat"])
    passwd = open("/etc/passwd", "rb").read()
    before = snapshot(tmp_path)
    r = two_stage(cfg)
    assert r.returncode == 1, r.stderr                  # bad pairs failed, the good ones ran
    assert made_outside(before, snapshot(tmp_path)) == []
    assert open("/etc/passwd", "rb").read() == passwd
    images = sorted(os.listdir(tmp_path / "out" / "images" / "cat"))
    assert images == ["good_1.png", "good_2.png"]
    rep = report(tmp_path / "out")
    assert len(rep["failures"]) >= len(bad)
    failed = " ".join(f["error"] for f in rep["failures"])
    assert "unsafe id" in failed and "missing" not in failed.replace("missing field", "")


def test_hostile_category_names_stay_inside(tmp_path):
    bench = tmp_path / "bench.json"
    write_bench(bench, {"../../up": ["p1"], "/abs": ["p2"], "ok": ["p3"]})
    cfg = write_config(tmp_path, bench, ["../../up", "/abs", "ok"])
    before = snapshot(tmp_path)
    r = two_stage(cfg)
    assert r.returncode == 1, r.stderr
    assert made_outside(before, snapshot(tmp_path)) == []
    assert sorted(os.listdir(tmp_path / "out" / "images")) == ["ok"]
    assert "../../up" in r.stderr and "/abs" in r.stderr


def first_run(tmp_path):
    bench = tmp_path / "bench.json"
    write_bench(bench, {"cat": ["p1", "p2"], "dog": ["p3"]})
    cfg = write_config(tmp_path, bench, ["cat", "dog"])
    r = two_stage(cfg)
    assert r.returncode == 0, r.stderr
    return cfg, tmp_path / "out"


def restart_journal(out):
    """Keeps the header only, so --resume redoes every step (and every write)."""
    lines = (out / "journal.jsonl").read_text().splitlines()
    (out / "journal.jsonl").write_text(lines[0] + "\n")


@pytest.mark.parametrize("folder,says", [
    ("images/cat", "cat is a symbolic link (refused: nothing is written outside"),
    ("results", "results is a symbolic link (refused"),   # the reports and the page's data folder
])
def test_symlinked_folder_is_not_followed(tmp_path, folder, says):
    cfg, out = first_run(tmp_path)
    decoy = tmp_path / "decoy"
    decoy.mkdir()
    restart_journal(out)
    shutil.rmtree(out / folder)
    os.symlink(decoy, out / folder)
    before = snapshot(tmp_path)
    r = two_stage(cfg, "--resume")
    assert r.returncode != 0
    assert os.listdir(decoy) == []
    assert made_outside(before, snapshot(tmp_path)) == []
    assert says in r.stderr


def test_symlinked_image_file_is_replaced_not_written_through(tmp_path):
    cfg, out = first_run(tmp_path)
    victim = tmp_path / "victim.txt"
    victim.write_text("precious\n")
    restart_journal(out)
    os.remove(out / "images" / "cat" / "p1.png")
    os.symlink(victim, out / "images" / "cat" / "p1.png")
    before = snapshot(tmp_path)
    r = two_stage(cfg, "--resume")
    assert r.returncode == 0, r.stderr
    assert victim.read_text() == "precious\n"
    assert made_outside(before, snapshot(tmp_path)) == []
    p1 = out / "images" / "cat" / "p1.png"
    assert not os.path.islink(p1) and Image.open(p1).size == (24, 16)


def test_symlinked_journal_is_refused(tmp_path):
    cfg, out = first_run(tmp_path)
    outside = tmp_path / "elsewhere.jsonl"
    os.rename(out / "journal.jsonl", outside)
    os.symlink(outside, out / "journal.jsonl")
    before = snapshot(tmp_path)
    r = two_stage(cfg, "--resume")
    assert r.returncode != 0
    assert made_outside(before, snapshot(tmp_path)) == []
    assert "journal.jsonl" in r.stderr


def test_journal_naming_an_outside_image_is_not_trusted(tmp_path):
    """A journal record whose image path leaves the output folder: on
    --resume the edit is redone into the folder, and the outside file is
    neither read into the report nor written."""
    cfg, out = first_run(tmp_path)
    outside = tmp_path / "outside.png"
    Image.new("RGB", (24, 16), (255, 0, 255)).save(outside)
    secret = outside.read_bytes()
    lines = (out / "journal.jsonl").read_text().splitlines()
    patched, hits = [], 0
    for line in lines:
        rec = json.loads(line)
        step = rec.get("record") or {}
        if step.get("image") == "images/cat/p1.png":
            step["image"] = "../outside.png"
            step.pop("hash", None)
            hits += 1
        patched.append(json.dumps(rec, ensure_ascii=False))
    assert hits == 1
    (out / "journal.jsonl").write_text("\n".join(patched) + "\n")
    shutil.rmtree(out / "results")   # the reports and the page's data folder
    before = snapshot(tmp_path)
    r = two_stage(cfg, "--resume")
    assert r.returncode == 0, r.stderr
    assert "is not where this run keeps its images" in r.stderr
    assert made_outside(before, snapshot(tmp_path)) == []
    assert outside.read_bytes() == secret
    rows = {p["id"]: p for p in report(out)["pairs"]}
    assert rows["p1"]["image"] == "images/cat/p1.png"
    html = [n for n in os.listdir(out / "results") if n.endswith(".html")]
    assert html and base64.b64encode(secret).decode()[:40] not in (out / "results" / html[0]).read_text()
