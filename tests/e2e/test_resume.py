"""Crash safety of a run's output folder (issue 8), through the built binary:
runs SIGKILLed at random instants in every phase (edit, swap, score, report)
and resumed until done give the same per-pair results and images as an
uninterrupted run, with no temp file, lock or torn line left; a torn journal
line; a journal of another run (dataset, config key, script); a held and a
stale lock; a non-empty folder without --resume; a read-only folder; a full
disk (RLIMIT_FSIZE, and a small tmpfs where mounting is allowed).

Environment: EVALHOST_BIN (default build/evalhost), EVALHOST_SRC (repo root).
"""
import base64
import glob
import hashlib
import io
import json
import os
import random
import re
import resource
import shutil
import signal
import subprocess
import tempfile
import threading
import time

import pytest
from PIL import Image, ImageDraw

SRC = os.environ.get("EVALHOST_SRC") or os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
BIN = os.environ.get("EVALHOST_BIN") or os.path.join(SRC, "build", "evalhost")
CATEGORIES = ["物理", "环境", "社会"]
INSTRUCTIONS = ["把天空变成红色", "水平翻转图像", "rotate the picture 90 degrees", "让画面变模糊",
                "brighten the room", "把场景变暗", "make the car blue", "add falling snow"]
# Slow enough that a kill lands inside a phase, fast enough for ~1.5 s a run.
SLOW = ["--set", "editor.delay_ms=25", "--set", "judge.delay_ms=25",
        "--set", "editor.load_ms=60", "--set", "judge.load_ms=60"]
TEMP_RE = re.compile(r"\.tmp\.\d+$")


def make_benchmark(path, per_category=4, size=(64, 48), seed=7, categories=CATEGORIES):
    rng = random.Random(seed)
    doc = {}
    for ci, cat in enumerate(categories):
        pairs = []
        for i in range(per_category):
            img = Image.new("RGB", size, tuple(rng.randrange(256) for _ in range(3)))
            d = ImageDraw.Draw(img)
            for _ in range(4):
                x0, y0 = rng.randrange(size[0]), rng.randrange(size[1])
                d.rectangle([x0, y0, x0 + rng.randrange(4, 30), y0 + rng.randrange(4, 30)],
                            fill=tuple(rng.randrange(256) for _ in range(3)))
            buf = io.BytesIO()
            img.save(buf, "PNG")
            pairs.append({
                "id": "pair_%03d" % (i + 1),
                "original_image_b64": base64.b64encode(buf.getvalue()).decode(),
                "edit_instruction": INSTRUCTIONS[(i * 3 + ci) % len(INSTRUCTIONS)],
                "original_description": "测试图 %d / test picture %d" % (i + 1, i + 1),
            })
        doc[cat] = {"data_pairs": pairs}
    with open(path, "w", encoding="utf-8") as f:
        json.dump(doc, f, ensure_ascii=False)


def write_config(path, data_path, out, extra=""):
    with open(path, "w", encoding="utf-8") as f:
        f.write("benchmark:\n  data_path: %s\n  categories: [%s]\n"
                "editor: {backend: builtin, name: imageops}\n"
                "judge: {backend: builtin, name: metrics}\n"
                "run:\n  out: %s\n"
                "report:\n  bootstrap: {resamples: 200}\n%s"
                % (json.dumps(data_path), ", ".join(CATEGORIES), json.dumps(out), extra))
    return path


def command(config, out, *args, script="two_stage"):
    return [BIN, os.path.join(SRC, "scripts", script + ".lua"), config, "--set", "run.out=" + out, *SLOW, *args]


def run(config, out, *args, script="two_stage", preexec=None, timeout=120):
    return subprocess.run(command(config, out, *args, script=script), cwd=SRC, capture_output=True, text=True,
                          timeout=timeout, preexec_fn=preexec)


def latest_report(out):
    files = sorted(glob.glob(os.path.join(out, "results", "evaluation_report_*.json")))
    assert files, "no report in %s" % out
    with open(files[-1], encoding="utf-8") as f:
        return json.load(f)


def file_hash(path):
    with open(path, "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()


def results(out):
    """Per-pair results of a finished folder: what must not depend on kills."""
    rep = latest_report(out)
    rows = {}
    for p in rep["pairs"]:
        img = p["image"]
        rows[(p["category"], p["id"])] = (p["score"], p["text"], p["error"], img,
                                          file_hash(os.path.join(out, img)) if img else None)
    return rows


def journal_lines(out):
    with open(os.path.join(out, "journal.jsonl"), "rb") as f:
        data = f.read()
    assert data.endswith(b"\n"), "journal ends in a torn line"
    return [json.loads(line) for line in data.decode("utf-8").splitlines()]


def assert_clean(out, n_pairs):
    """No temp file, no lock, a whole journal with each step exactly once."""
    leftovers = [os.path.join(d, f) for d, _, fs in os.walk(out) for f in fs if TEMP_RE.search(f)]
    assert leftovers == [], leftovers
    assert not os.path.exists(os.path.join(out, ".lock"))
    # each process's own "run" line (its swaps and timings) besides the steps
    lines = [l for l in journal_lines(out) if l["type"] != "run"]
    assert lines[0]["type"] == "header" and all(l["type"] == "step" for l in lines[1:])
    steps = [(l["stage"], l["category"], l["id"]) for l in lines[1:]]
    assert len(steps) == len(set(steps)) == 2 * n_pairs, (len(steps), len(set(steps)))
    for l in lines[1:]:
        if l["stage"] == "edit":
            rec = l["record"]
            assert rec["image"] == "images/%s/%s.png" % (l["category"], l["id"])
            assert len(rec["hash"]) == 32


class Watched:
    """A run whose stderr lines are time-stamped as they arrive."""

    def __init__(self, cmd):
        self.t0 = time.monotonic()
        self.proc = subprocess.Popen(cmd, cwd=SRC, stderr=subprocess.PIPE, stdout=subprocess.DEVNULL)
        self.lines = []
        self.thread = threading.Thread(target=self._read, daemon=True)
        self.thread.start()

    def _read(self):
        for raw in self.proc.stderr:
            self.lines.append((time.monotonic() - self.t0, raw.decode("utf-8", "replace").rstrip("\n")))

    def kill_after(self, key, nth, delay):
        """SIGKILL `delay` s after the nth log line starting a phase (marker());
        False when the run ended before."""
        seen_at = None
        while seen_at is None and self.proc.poll() is None:
            count = 0
            for t, line in list(self.lines):
                if marker(line) == key:
                    if count == nth:
                        seen_at = t
                        break
                    count += 1
            time.sleep(0.002)
        if seen_at is None:
            return self.kill_at(0)
        return self.kill_at(seen_at + delay)

    def kill_at(self, t):
        """SIGKILL at t seconds after start; False when it ended before."""
        while time.monotonic() - self.t0 < t:
            if self.proc.poll() is not None:
                break
            time.sleep(0.002)
        killed = self.proc.poll() is None
        if killed:
            self.proc.send_signal(signal.SIGKILL)
        self.proc.wait()
        self.thread.join(5)
        return killed

    def wait(self):
        rc = self.proc.wait(timeout=120)
        self.thread.join(5)
        return rc


def marker(line):
    """The part of a log line that marks the start of a phase, or None."""
    m = re.match(r"(\[swap\] (?:editor|judge) → cpu|\[[^\]]+\] (?:编辑图像|评分)(?: / (?:edit|score))?: 100%)", line)
    return m.group(1) if m else None


def phase_spans(lines, end):
    """{phase: [(marker, nth, seconds)]} from an uninterrupted run's log: the
    line each phase began with and how long it lasted."""
    starts, counts = [], {}
    for t, line in lines:
        key = marker(line)
        if key is None:
            continue
        phase = "edit" if "editor → cpu" in key else "score" if "judge → cpu" in key else "swap"
        starts.append([t, phase, key, counts.get(key, 0)])
        counts[key] = counts.get(key, 0) + 1
    last_score = max(i for i, s in enumerate(starts) if "评分" in s[2])
    starts[last_score][1] = "report"   # then the judge's unload and the reports
    del starts[last_score + 1:]
    spans = {}
    for i, (t, phase, key, nth) in enumerate(starts):
        t1 = starts[i + 1][0] if i + 1 < len(starts) else end
        spans.setdefault(phase, []).append((key, nth, t1 - t))
    return spans


def phase_at_kill(lines, out, n_pairs):
    """What the killed run was doing, from its log and its journal."""
    try:
        steps = len(journal_lines_loose(out))
    except FileNotFoundError:
        steps = 0
    if steps >= 2 * n_pairs:
        return "report"
    text = [l for _, l in lines if l.strip()]
    if not text:
        return "setup"
    last = text[-1]
    if "→ host" in last or re.search(r"(编辑图像|评分)( / (edit|score))?: 100%", last) or "平均分" in last:
        return "swap"
    if "编辑图像" in last or "[swap] editor → cpu" in last:
        return "edit"
    if "评分" in last or "[swap] judge → cpu" in last:
        return "score"
    return "setup"


def journal_lines_loose(out):
    """Whole step lines of a possibly torn journal."""
    with open(os.path.join(out, "journal.jsonl"), "rb") as f:
        data = f.read()
    whole = data[:data.rfind(b"\n") + 1].decode("utf-8").splitlines()
    return [l for l in whole if '"type":"step"' in l]


@pytest.fixture(scope="module")
def binary():
    if not os.access(BIN, os.X_OK):
        pytest.fail("evalhost binary not found at %s (build it or set EVALHOST_BIN)" % BIN)
    return BIN


@pytest.fixture(scope="module")
def bench(tmp_path_factory):
    d = tmp_path_factory.mktemp("bench")
    path = str(d / "bench.json")
    make_benchmark(path)
    return path


@pytest.fixture(scope="module")
def reference(binary, bench, tmp_path_factory):
    """One uninterrupted run: its results and the times its phases began."""
    d = tmp_path_factory.mktemp("ref")
    out = str(d / "out")
    cfg = write_config(str(d / "c.yaml"), bench, out)
    w = Watched(command(cfg, out))
    rc = w.wait()
    assert rc == 0, "\n".join(l for _, l in w.lines)
    duration = time.monotonic() - w.t0
    n = 4 * len(CATEGORIES)
    assert_clean(out, n)
    return {"out": out, "results": results(out), "spans": phase_spans(w.lines, duration), "duration": duration, "n": n}


def test_reference_run_is_sane(reference):
    res = reference["results"]
    assert len(res) == reference["n"]
    assert all(isinstance(r[0], (int, float)) and r[2] is None for r in res.values())
    assert len({r[0] for r in res.values()}) > 1
    spans = reference["spans"]
    for phase in ("edit", "swap", "score", "report"):
        assert phase in spans, spans
    assert len(spans["edit"]) == len(spans["score"]) == len(CATEGORIES)


def test_killed_at_random_instants_and_resumed(binary, bench, reference, tmp_path):
    """>= 20 runs SIGKILLed in every phase, each resumed (and sometimes killed
    again) until done: the same per-pair results and images as one run."""
    rng = random.Random(int(os.environ.get("EVALHOST_KILL_SEED", "20261125")))
    spans = reference["spans"]
    seen, kills, k = {}, 0, 0
    aims = ["edit", "swap", "score", "report"] * 5
    while (kills < 20 or len(seen.keys() - {"finished"}) < 4) and k < 40:
        aim = aims[k % len(aims)]
        key, nth, length = rng.choice(spans[aim])
        out = str(tmp_path / ("run%02d" % k))
        cfg = write_config(str(tmp_path / ("c%02d.yaml" % k)), bench, out)
        k += 1
        w = Watched(command(cfg, out))
        if not w.kill_after(key, nth, rng.uniform(0, length)):
            assert w.proc.returncode == 0
            seen.setdefault("finished", []).append(k)
            shutil.rmtree(out)
            continue
        kills += 1
        got = phase_at_kill(w.lines, out, reference["n"])
        seen.setdefault(got, []).append(k)
        # resume; now and then kill the resumed run too, at any instant
        for _ in range(2):
            if rng.random() < 0.35:
                w = Watched(command(cfg, out, "--resume"))
                if w.kill_at(rng.uniform(0.02, reference["duration"])):
                    kills += 1
        r = run(cfg, out, "--resume")
        assert r.returncode == 0, (k, aim, got, r.stderr[-2000:])
        assert results(out) == reference["results"], (k, aim, got)
        assert_clean(out, reference["n"])
        shutil.rmtree(out)
    print("kills: %d, by phase: %s" % (kills, {p: len(v) for p, v in seen.items()}))
    assert kills >= 20, (kills, seen)
    for phase in ("edit", "swap", "score", "report"):
        assert phase in seen, ("no kill landed in phase %s" % phase, seen)


def test_torn_journal_line_is_redone(binary, bench, reference, tmp_path):
    out = str(tmp_path / "out")
    cfg = write_config(str(tmp_path / "c.yaml"), bench, out)
    assert run(cfg, out).returncode == 0
    path = os.path.join(out, "journal.jsonl")
    with open(path, "rb") as f:
        lines = f.read().split(b"\n")[:-1]
    # the last four records gone and the fifth from last cut mid-line
    torn = b"\n".join(lines[:-5]) + b"\n" + lines[-5][: len(lines[-5]) // 2]
    with open(path, "wb") as f:
        f.write(torn)
    shutil.rmtree(os.path.join(out, "results"))
    r = run(cfg, out, "--resume")
    assert r.returncode == 0, r.stderr
    assert "ignoring a torn last record" in r.stderr
    assert results(out) == reference["results"]
    assert_clean(out, reference["n"])


def test_changed_or_missing_image_is_redone(binary, bench, reference, tmp_path):
    out = str(tmp_path / "out")
    cfg = write_config(str(tmp_path / "c.yaml"), bench, out)
    assert run(cfg, out).returncode == 0
    shutil.rmtree(os.path.join(out, "results"))
    changed = os.path.join(out, "images", "环境", "pair_002.png")
    Image.new("RGB", (8, 8)).save(changed)
    os.remove(os.path.join(out, "images", "社会", "pair_004.png"))
    r = run(cfg, out, "--resume")
    assert r.returncode == 0, r.stderr
    assert re.search(r"pair_002\.png does not match its recorded hash; redoing the edit of 环境/pair_002", r.stderr)
    assert re.search(r"pair_004\.png is missing; redoing the edit of 社会/pair_004", r.stderr)
    assert "2 edit(s) to redo" in r.stderr
    assert results(out) == reference["results"]
    lines = journal_lines(out)
    redone = [(l["stage"], l["id"]) for l in lines if l.get("category") == "环境" and l.get("id") == "pair_002"]
    assert redone == [("edit", "pair_002"), ("score", "pair_002")] * 2


def test_journal_of_another_run_is_refused(binary, bench, reference, tmp_path):
    out = str(tmp_path / "out")
    cfg = write_config(str(tmp_path / "c.yaml"), bench, out)
    assert run(cfg, out).returncode == 0
    before = open(os.path.join(out, "journal.jsonl"), "rb").read()

    r = run(cfg, out, "--resume", "--set", "editor.name=identity", "--set", "judge.footprint_mb=512")
    assert r.returncode == 1
    assert "belongs to a different run" in r.stderr
    assert 'editor.name ("imageops" -> "identity")' in r.stderr
    assert "judge.footprint_mb (added: 512)" in r.stderr
    assert "--resume=force" in r.stderr

    other = str(tmp_path / "other.json")
    make_benchmark(other, seed=8)
    cfg2 = write_config(str(tmp_path / "c2.yaml"), other, out)
    r = run(cfg2, out, "--resume")
    assert r.returncode == 1 and "the dataset differs" in r.stderr, r.stderr
    assert "config keys" not in r.stderr   # the dataset's path is not part of the key, its bytes are

    r = run(cfg, out, "--resume", script="single_stage")
    assert r.returncode == 1 and "the script differs" in r.stderr, r.stderr
    assert open(os.path.join(out, "journal.jsonl"), "rb").read() == before   # refused: nothing written

    # paths that cannot change a result are not part of the key
    moved = str(tmp_path / "moved.json")
    shutil.copy(bench, moved)
    cfg3 = write_config(str(tmp_path / "c3.yaml"), moved, out)
    r = run(cfg3, out, "--resume", "--set", "report.html=false", "--set", "run.keep_both=true")
    assert r.returncode == 0, r.stderr

    r = run(cfg, out, "--resume=force", "--set", "editor.name=identity")
    assert r.returncode == 0, r.stderr
    assert "--resume=force: continuing the journal of run" in r.stderr


def test_non_empty_folder_needs_resume(binary, bench, reference, tmp_path):
    out = str(tmp_path / "out")
    os.makedirs(out)
    with open(os.path.join(out, "notes.txt"), "w") as f:
        f.write("mine")
    cfg = write_config(str(tmp_path / "c.yaml"), bench, out)
    r = run(cfg, out)
    assert r.returncode == 1
    assert "output folder %s is not empty" % out in r.stderr and "--resume" in r.stderr
    assert os.listdir(out) == ["notes.txt"]
    # --resume on a missing folder, and on an empty one, simply starts
    for name in ("missing", "empty"):
        o = str(tmp_path / name)
        if name == "empty":
            os.makedirs(o)
        r = run(write_config(str(tmp_path / (name + ".yaml")), bench, o), o, "--resume")
        assert r.returncode == 0, r.stderr
        assert results(o) == reference["results"]


def test_held_lock_then_stale_lock(binary, bench, reference, tmp_path):
    out = str(tmp_path / "out")
    cfg = write_config(str(tmp_path / "c.yaml"), bench, out)
    # slower than the other tests, so the first run is surely still going
    # when the second one has been refused, however loaded the machine is
    slower = ("--set", "editor.delay_ms=100", "--set", "judge.delay_ms=100")
    w = Watched(command(cfg, out, *slower))
    deadline = time.monotonic() + 20
    while not journal_has_steps(out) and time.monotonic() < deadline:
        time.sleep(0.01)
    second = run(cfg, out, "--resume", *slower)
    assert w.proc.poll() is None, "the first run ended before the test could kill it"
    assert second.returncode == 1
    m = re.search(r"output folder (\S+) is in use by another evalhost \(pid (\d+) on (\S+),", second.stderr)
    assert m, second.stderr
    assert int(m.group(2)) == w.proc.pid
    w.proc.send_signal(signal.SIGKILL)
    w.wait()
    assert os.path.exists(os.path.join(out, ".lock"))   # the dead run's lock is left behind
    r = run(cfg, out, "--resume", *slower)
    assert r.returncode == 0, r.stderr
    assert "taking over the stale lock of pid %d" % w.proc.pid in r.stderr
    assert "that process is gone" in r.stderr
    assert results(out) == reference["results"]
    assert_clean(out, reference["n"])


def journal_has_steps(out):
    try:
        return len(journal_lines_loose(out)) > 0
    except FileNotFoundError:
        return False


def partial_run(cfg, out, steps=6):
    """A run killed once it has journaled some steps."""
    w = Watched(command(cfg, out))
    deadline = time.monotonic() + 20
    while len(journal_lines_loose(out) if os.path.exists(os.path.join(out, "journal.jsonl")) else []) < steps:
        assert time.monotonic() < deadline and w.proc.poll() is None
        time.sleep(0.005)
    w.proc.send_signal(signal.SIGKILL)
    w.wait()


def tree_state(out):
    return {os.path.join(d, f): os.path.getsize(os.path.join(d, f)) for d, _, fs in os.walk(out) for f in fs}


def can_mount():
    if os.geteuid() != 0 or not shutil.which("mount"):
        return False
    d = tempfile.mkdtemp()
    ok = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", d], capture_output=True).returncode == 0
    if ok:
        subprocess.run(["umount", d])
    os.rmdir(d)
    return ok


def test_read_only_output_folder(binary, bench, reference, tmp_path):
    """Resuming into a folder that cannot be written: a clear message, nothing
    touched; once writable again the same command finishes the run."""
    if can_mount():   # a read-only mount stops root too
        mnt = tempfile.mkdtemp()
        subprocess.run(["mount", "-t", "tmpfs", "-o", "size=16m", "tmpfs", mnt], check=True)
        try:
            out = os.path.join(mnt, "out")
            cfg = write_config(str(tmp_path / "c.yaml"), bench, out)
            partial_run(cfg, out)
            before = tree_state(out)
            subprocess.run(["mount", "-o", "remount,ro", mnt], check=True)
            r = run(cfg, out, "--resume")
            assert r.returncode == 1
            assert "cannot create the lock file %s/.lock: Read-only file system" % out in r.stderr, r.stderr
            assert tree_state(out) == before
            subprocess.run(["mount", "-o", "remount,rw", mnt], check=True)
            r = run(cfg, out, "--resume")
            assert r.returncode == 0, r.stderr
            assert results(out) == reference["results"]
            assert_clean(out, reference["n"])
        finally:
            subprocess.run(["umount", "-l", mnt])
            os.rmdir(mnt)
        return
    # no mounting: permissions, as an unprivileged user when we are root
    base = tempfile.mkdtemp()
    os.chmod(base, 0o755)
    try:
        out = os.path.join(base, "out")
        data = os.path.join(base, "bench.json")
        shutil.copy(bench, data)
        os.chmod(data, 0o644)
        cfg = write_config(os.path.join(base, "c.yaml"), data, out)
        os.chmod(cfg, 0o644)
        partial_run(cfg, out)
        before = tree_state(out)
        for d, _, _ in os.walk(out):
            os.chmod(d, 0o555)

        def drop():
            if os.geteuid() == 0:
                os.setgid(65534)
                os.setuid(65534)
        r = run(cfg, out, "--resume", preexec=drop)
        assert r.returncode == 1
        assert "cannot create the lock file %s/.lock: Permission denied" % out in r.stderr, r.stderr
        assert tree_state(out) == before
        for d, _, _ in os.walk(out):
            os.chmod(d, 0o755)
        r = run(cfg, out, "--resume")
        assert r.returncode == 0, r.stderr
        assert results(out) == reference["results"]
    finally:
        shutil.rmtree(base, ignore_errors=True)


def fsize_limit(nbytes):
    def apply():
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)   # a write past the limit fails instead of killing
        resource.setrlimit(resource.RLIMIT_FSIZE, (nbytes, nbytes))
    return apply


@pytest.mark.parametrize("limit,what", [(900, "cannot save the edit"), (2600, "journal:"), (7000, "report:")])
def test_full_disk_stops_cleanly_and_resumes(binary, bench, reference, tmp_path, limit, what):
    """RLIMIT_FSIZE stands for a full disk: the first write past it fails. The
    limit picks which write that is: an edited image, a journal record or a
    report file (the JSON report is ~8.5 kB here, the journal ~6 kB; the HTML
    page no longer embeds pictures, so it is no longer the largest)."""
    out = str(tmp_path / "out")
    cfg = write_config(str(tmp_path / "c.yaml"), bench, out)
    r = run(cfg, out, preexec=fsize_limit(limit))
    assert r.returncode == 1, r.stderr[-2000:]
    assert what in r.stderr, r.stderr[-2000:]
    assert "File too large" in r.stderr or "No space left" in r.stderr, r.stderr[-2000:]
    assert "fix the cause and run the same command with --resume" in r.stderr
    assert "Traceback" not in r.stderr and "stack traceback" not in r.stderr
    journal_lines(out)   # whole lines only: the failed record was cut back off
    assert not os.path.exists(os.path.join(out, ".lock"))
    r = run(cfg, out, "--resume")
    assert r.returncode == 0, r.stderr[-2000:]
    assert results(out) == reference["results"]
    assert_clean(out, reference["n"])


def test_full_tmpfs_stops_cleanly_and_resumes(binary, bench, reference, tmp_path):
    """A real ENOSPC on a small tmpfs, then the run moved to a bigger one."""
    if not can_mount():
        pytest.skip("mounting a tmpfs is not allowed here (RLIMIT_FSIZE covers a full disk)")
    mnt = tempfile.mkdtemp()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=48k", "tmpfs", mnt], check=True)
    try:
        out = os.path.join(mnt, "out")
        cfg = write_config(str(tmp_path / "c.yaml"), bench, out)
        r = run(cfg, out)
        assert r.returncode == 1, r.stderr[-2000:]
        assert "No space left on device" in r.stderr, r.stderr[-2000:]
        journal_lines(out)
        subprocess.run(["mount", "-o", "remount,size=16m", mnt], check=True)
        r = run(cfg, out, "--resume")
        assert r.returncode == 0, r.stderr[-2000:]
        assert results(out) == reference["results"]
        assert_clean(out, reference["n"])
    finally:
        subprocess.run(["umount", "-l", mnt])
        os.rmdir(mnt)


BINDING_SCRIPT = r'''
local J = evalhost.journal
local dir = evalhost.config.script.dir
local function expect_error(pattern, f, ...)
  local ok, err = pcall(f, ...)
  assert(not ok, "expected an error matching " .. pattern)
  assert(tostring(err):find(pattern, 1, true), tostring(err))
end
local j = assert(J.open(dir, "key-1", { header = { parts = { dataset = "d" } } }))
assert(j:is_new() and tostring(j):find("evalhost.Journal", 1, true))
assert(j:header().run_key == "key-1" and j:header().parts.dataset == "d")
assert(j:record("edit", "物理", "p1", { image = "images/物理/p1.png", hash = "h1" }))
assert(j:record("score", "物理", "p1", { score = 7.5, text = "line\nbreak" }))
assert(j:record("score", "物理", "p1", { score = 8 }))            -- a later record replaces
-- this process's own records are not held (flat memory: the schedule reads them back from the file)
assert(j:done("score", "物理", "p1") == nil and j:done("edit", "物理", "p2") == nil and #j:entries() == 0)
expect_error("bad argument #5", j.record, j, "edit", "c", "id")
expect_error("cannot encode a function", j.record, j, "edit", "c", "id", { f = print })
local j2, err = J.open(dir, "key-1", { resume = "yes" })
assert(j2 == nil and err:find("in use by another evalhost", 1, true), err)
j:close(); j:close()                                             -- idempotent
expect_error("attempt to use a closed journal", j.done, j, "a", "b", "c")
collectgarbage(); collectgarbage()                               -- close-then-collect
local r, e2, old = J.open(dir, "key-2", { resume = "yes" })
assert(r == nil and e2:find("different run", 1, true) and old.run_key == "key-1", e2)
expect_error('opts.resume must be "no", "yes" or "force" (got maybe)', J.open, dir, "key-1", { resume = "maybe" })
expect_error("opts.header must be a table", J.open, dir, "key-1", { resume = "yes", header = "x" })
do
  local j3 <close> = assert(J.open(dir, "key-1", { resume = "yes" }))
  local es = j3:entries()
  assert(#es == 3 and es[2].record.text == "line\nbreak" and es[3].record.score == 8)
  assert(j3:done("score", "物理", "p1").score == 8 and not j3:is_new())
end                                                              -- __close released the lock
local h, entries = J.read(dir)
assert(h.run_key == "key-1" and #entries == 3)
assert(J.header(dir).parts.dataset == "d")
local none, why = J.read(dir .. "/nowhere")
assert(none == nil and why:find("no journal in this folder", 1, true), why)
assert(J.header(dir .. "/nowhere") == nil)
print("binding ok")
'''


def test_a_long_run_reads_its_steps_back_from_the_journal(binary, tmp_path):
    """Flat memory (issue 20): past the few hundred records a run keeps in memory, each step is
    read back from its journal line (by offset) for scoring and for the report. 900 pairs: every
    report row equals the journal's records; killed mid-scoring and resumed (replayed steps in
    memory, new ones on disk), the report's rows are the uninterrupted run's."""
    data = str(tmp_path / "b.json")
    make_benchmark(data, per_category=300, size=(8, 8))

    def cmd(out, *args):
        return [BIN, os.path.join(SRC, "scripts", "two_stage.lua"), write_config(str(tmp_path / "c.yaml"), data, out),
                "--set", "report.bootstrap.resamples=20", *args]

    ref_out = str(tmp_path / "ref")
    r = subprocess.run(cmd(ref_out), cwd=SRC, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-2000:]
    steps = {}
    for l in journal_lines(ref_out):
        if l["type"] == "step":
            steps[(l["stage"], l["category"], l["id"])] = l["record"]
    rep = latest_report(ref_out)
    assert len(rep["pairs"]) == 900
    for p in rep["pairs"]:
        e, sc = steps[("edit", p["category"], p["id"])], steps[("score", p["category"], p["id"])]
        assert (p["image"], p["edit_seconds"]) == (e["image"], e["seconds"]), p
        assert (p["score"], p["text"], p["score_seconds"], p["score_method"]) == (
            sc["score"], sc["text"], sc["seconds"], sc["score_method"]), p
    ref = results(ref_out)

    out = str(tmp_path / "out")
    p = subprocess.Popen(cmd(out), cwd=SRC, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    t0 = time.monotonic()
    def scored():
        try:
            return sum(1 for l in journal_lines_loose(out) if '"stage":"score"' in l)
        except FileNotFoundError:
            return 0
    while scored() < 300:
        assert p.poll() is None and time.monotonic() - t0 < 120
        time.sleep(0.02)
    p.kill()
    p.wait()
    r = subprocess.run(cmd(out, "--resume"), cwd=SRC, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-2000:]
    assert results(out) == ref
    assert_clean(out, 900)


def test_journal_binding(binary, tmp_path):
    script = tmp_path / "binding.lua"
    script.write_text(BINDING_SCRIPT, encoding="utf-8")
    r = subprocess.run([BIN, str(script), "--set", "script.dir=" + str(tmp_path / "j")], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0 and "binding ok" in r.stdout, r.stdout + r.stderr
    assert not os.path.exists(str(tmp_path / "j" / ".lock"))
