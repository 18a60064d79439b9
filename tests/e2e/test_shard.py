"""Sharding and merging (issue 8), through the built binary: --shard i/N and
the launchers' environment split the pairs deterministically, disjointly and
balanced per category; scripts/merge.lua turns the shards' folders into one
whose per-pair results and images equal a single process's; missing and
duplicated pairs are named by id; two MPI ranks under mpirun.

Environment: EVALHOST_BIN (default build/evalhost), EVALHOST_SRC (repo root).
"""
import base64
import io
import json
import os
import random
import shutil
import subprocess

import pytest
from PIL import Image, ImageDraw

from test_resume import assert_clean, journal_lines, results

SRC = os.environ.get("EVALHOST_SRC") or os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
BIN = os.environ.get("EVALHOST_BIN") or os.path.join(SRC, "build", "evalhost")
# uneven on purpose: 7 + 5 + 4 pairs do not divide by 3
COUNTS = {"物理": 7, "环境": 5, "指代": 4}
LAUNCHER_ENV = ("SLURM_PROCID", "SLURM_NTASKS", "OMPI_COMM_WORLD_RANK", "OMPI_COMM_WORLD_SIZE", "RANK", "WORLD_SIZE",
                "LOCAL_RANK", "SLURM_LOCALID", "OMPI_COMM_WORLD_LOCAL_RANK")


def make_benchmark(path, counts=COUNTS, seed=3):
    rng = random.Random(seed)
    doc = {}
    for cat, n in counts.items():
        pairs = []
        for i in range(n):
            img = Image.new("RGB", (48, 40), tuple(rng.randrange(256) for _ in range(3)))
            d = ImageDraw.Draw(img)
            x, y = rng.randrange(40), rng.randrange(32)
            d.ellipse([x, y, x + 12, y + 10], fill=tuple(rng.randrange(256) for _ in range(3)))
            buf = io.BytesIO()
            img.save(buf, "PNG")
            pairs.append({"id": "p%02d" % (i + 1), "original_image_b64": base64.b64encode(buf.getvalue()).decode(),
                          "edit_instruction": ["水平翻转图像", "让画面变模糊", "brighten the room", "把场景变暗"][i % 4],
                          "original_description": "图 %d" % i})
        doc[cat] = {"data_pairs": pairs}
    with open(path, "w", encoding="utf-8") as f:
        json.dump(doc, f, ensure_ascii=False)


def write_config(path, data_path, out):
    with open(path, "w", encoding="utf-8") as f:
        f.write("benchmark:\n  data_path: %s\n  categories: [%s]\n"
                "editor: {backend: builtin, name: imageops}\n"
                "judge: {backend: builtin, name: metrics}\n"
                "run:\n  out: %s\n" % (json.dumps(data_path), ", ".join(COUNTS), json.dumps(out)))
    return path


def clean_env(**extra):
    env = {k: v for k, v in os.environ.items() if k not in LAUNCHER_ENV}
    env.update(extra)
    return env


def run(script, cfg, *args, env=None):
    cmd = [BIN, os.path.join(SRC, "scripts", script + ".lua"), cfg, "--quiet", *args]
    return subprocess.run(cmd, cwd=SRC, capture_output=True, text=True, timeout=300, env=env or clean_env())


def owned(folder):
    """{category: [ids]} a shard's journal finished (its edit steps)."""
    by = {}
    for line in journal_lines(folder)[1:]:
        if line.get("stage") == "edit":   # run lines (a process's swaps and timings) have none
            by.setdefault(line["category"], []).append(line["id"])
    return by


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    if not os.access(BIN, os.X_OK):
        pytest.fail("evalhost binary not found at %s (build it or set EVALHOST_BIN)" % BIN)
    d = tmp_path_factory.mktemp("shard")
    data = str(d / "bench.json")
    make_benchmark(data)
    single = str(d / "single")
    cfg = write_config(str(d / "c.yaml"), data, single)
    r = run("two_stage", cfg)
    assert r.returncode == 0, r.stderr
    sharded = str(d / "sharded")
    for i in range(3):
        r = run("two_stage", cfg, "--shard", "%d/3" % i, "--set", "run.out=" + sharded)
        assert r.returncode == 0, r.stderr
    return {"dir": d, "data": data, "cfg": cfg, "single": single, "sharded": sharded,
            "reference": results(single)}


def test_split_is_disjoint_balanced_and_deterministic(setup):
    sharded = setup["sharded"]
    assert sorted(os.listdir(sharded)) == ["shard-0-of-3", "shard-1-of-3", "shard-2-of-3"]
    parts = [owned(os.path.join(sharded, "shard-%d-of-3" % i)) for i in range(3)]
    totals = [sum(len(v) for v in p.values()) for p in parts]
    assert sum(totals) == sum(COUNTS.values()) and max(totals) - min(totals) <= 1, totals
    for cat, n in COUNTS.items():
        ids = [i for p in parts for i in p.get(cat, [])]
        assert sorted(ids) == ["p%02d" % (i + 1) for i in range(n)], (cat, ids)   # disjoint, complete
        sizes = [len(p.get(cat, [])) for p in parts]
        assert max(sizes) - min(sizes) <= 1, (cat, sizes)
    for i in range(3):
        h = journal_lines(os.path.join(sharded, "shard-%d-of-3" % i))[0]
        assert h["shard"] == {"index": i, "count": 3}
    # the same split again, from the launcher's environment instead of --shard
    for name, env in (("slurm", {"SLURM_PROCID": "1", "SLURM_NTASKS": "3"}),
                      ("torchrun", {"RANK": "1", "WORLD_SIZE": "3", "LOCAL_RANK": "0"})):
        out = str(setup["dir"] / name)
        r = run("two_stage", setup["cfg"], "--set", "run.out=" + out, env=clean_env(**env))
        assert r.returncode == 0, r.stderr
        assert os.listdir(out) == ["shard-1-of-3"]
        assert owned(os.path.join(out, "shard-1-of-3")) == parts[1]


def test_three_shards_merged_equal_one_process(setup):
    out = str(setup["dir"] / "merged")
    r = run("merge", setup["cfg"], "--set", "merge.inputs=[%s]" % setup["sharded"], "--set", "run.out=" + out)
    assert r.returncode == 0, r.stderr
    assert results(out) == setup["reference"]
    assert_clean(out, sum(COUNTS.values()))
    rep = json.load(open(sorted(__import__("glob").glob(os.path.join(out, "results", "*.json")))[-1]))
    single = json.load(open(sorted(__import__("glob").glob(os.path.join(setup["single"], "results", "*.json")))[-1]))
    for cat in COUNTS:
        for k in ("n", "failed", "mean", "std", "median", "min", "max"):
            assert rep["categories"][cat][k] == single["categories"][cat][k], (cat, k)
    assert rep["pairs"] == [dict(p, edit_seconds=q["edit_seconds"], score_seconds=q["score_seconds"])
                            for p, q in zip(single["pairs"], rep["pairs"])]
    # listing the folders one by one is the same as the parent folder
    out2 = str(setup["dir"] / "merged2")
    inputs = ",".join(os.path.join(setup["sharded"], "shard-%d-of-3" % i) for i in (2, 0, 1))
    r = run("merge", setup["cfg"], "--set", "merge.inputs=[%s]" % inputs, "--set", "run.out=" + out2)
    assert r.returncode == 0, r.stderr
    assert results(out2) == setup["reference"]


def test_merge_names_missing_and_duplicated_pairs(setup):
    sharded = setup["sharded"]
    s = [os.path.join(sharded, "shard-%d-of-3" % i) for i in range(3)]
    out = str(setup["dir"] / "missing")
    r = run("merge", setup["cfg"], "--set", "merge.inputs=[%s,%s]" % (s[0], s[1]), "--set", "run.out=" + out)
    assert r.returncode == 1
    lost = owned(s[2])
    n_lost = sum(len(v) for v in lost.values())
    assert "merge: %d pair(s) missing from the inputs:" % n_lost in r.stderr, r.stderr
    for cat, ids in lost.items():
        for i in ids:
            assert "%s/%s" % (cat, i) in r.stderr

    # the same shard twice: named, harmless
    out = str(setup["dir"] / "dup")
    r = run("merge", setup["cfg"], "--set", "merge.inputs=[%s,%s,%s,%s]" % (s[0], s[1], s[2], s[0]),
            "--set", "run.out=" + out)
    assert r.returncode == 0, r.stderr
    first = owned(s[0])
    assert "merge: %d pair(s) found in more than one input:" % sum(len(v) for v in first.values()) in r.stderr
    cat = next(iter(first))
    assert "%s/%s (in %s and %s)" % (cat, first[cat][0], s[0], s[0]) in r.stderr
    assert results(out) == setup["reference"]

    # a copy whose score differs: a failure of that pair, by id
    bad = str(setup["dir"] / "shard-0-copy")
    shutil.copytree(s[0], bad)
    lines = journal_lines(bad)
    target = next(l for l in lines[1:] if l.get("stage") == "score")
    target["record"]["score"] = 0.5
    with open(os.path.join(bad, "journal.jsonl"), "w", encoding="utf-8") as f:
        f.write("".join(json.dumps(l, ensure_ascii=False) + "\n" for l in lines))
    out = str(setup["dir"] / "conflict")
    r = run("merge", setup["cfg"], "--set", "merge.inputs=[%s,%s,%s,%s]" % (s[0], s[1], s[2], bad),
            "--set", "run.out=" + out)
    assert r.returncode == 1
    assert "%s/%s (score: %s and %s differ)" % (target["category"], target["id"], s[0], bad) in r.stderr, r.stderr


def test_merge_refuses_shards_of_another_config(setup):
    out = str(setup["dir"] / "other")
    r = run("merge", setup["cfg"], "--set", "merge.inputs=[%s]" % setup["sharded"], "--set", "run.out=" + out,
            "--set", "editor.name=identity")
    assert r.returncode == 1
    assert "comes from another run (config keys differ: editor.name (\"imageops\" -> \"identity\"))" in r.stderr, r.stderr
    r = run("merge", setup["cfg"], "--set", "merge.inputs=[%s]" % str(setup["dir"]), "--set", "run.out=" + out + "2")
    assert r.returncode == 1 and "holds no journal" in r.stderr, r.stderr
    r = run("merge", setup["cfg"], "--set", "run.out=" + out + "3")
    assert r.returncode == 1 and "set merge.inputs" in r.stderr, r.stderr


def test_bad_shard_argument(setup):
    for bad in ("3/3", "-1/2", "1", "a/b", "0/0"):
        r = run("two_stage", setup["cfg"], "--shard", bad)
        assert r.returncode == 2 and "expected i/N with 0 <= i < N" in r.stderr, (bad, r.stderr)


def test_mpirun_two_ranks_then_merge(setup):
    mpirun = shutil.which("mpirun")
    if not mpirun:
        pytest.skip("mpirun not installed (apt-get install openmpi-bin)")
    out = str(setup["dir"] / "mpi")
    cmd = [mpirun, "--allow-run-as-root", "--oversubscribe", "-np", "2", BIN,
           os.path.join(SRC, "scripts", "two_stage.lua"), setup["cfg"], "--quiet", "--set", "run.out=" + out]
    r = subprocess.run(cmd, cwd=SRC, capture_output=True, text=True, timeout=300, env=clean_env())
    assert r.returncode == 0, r.stdout + r.stderr
    assert sorted(os.listdir(out)) == ["shard-0-of-2", "shard-1-of-2"]
    merged = str(setup["dir"] / "mpi-merged")
    r = run("merge", setup["cfg"], "--set", "merge.inputs=[%s]" % out, "--set", "run.out=" + merged)
    assert r.returncode == 0, r.stderr
    assert results(merged) == setup["reference"]
