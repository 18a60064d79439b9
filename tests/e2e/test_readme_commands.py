"""README's commands run as printed (issue 24). Every ```sh block runs, in
README order, in a copy of the checkout's tracked config/, examples/,
scripts/ and lua/ where `make run` has happened (build/evalhost is this
build's binary and outputs/example/ its default job); a block that needs a
GPU, a server, a cluster or real weights says so with a
`<!-- readme-test: skip (why) -->` line right above it. Commands cannot
hide in unlabeled blocks, and every ```yaml block passes the config schema."""
import os
import re
import shutil
import subprocess

import pytest

from conftest import BIN, SRC

README = SRC / "README.md"
FENCE = re.compile(r"^( *)```([\w-]*)\s*$")
SKIP = re.compile(r"^\s*<!-- readme-test: skip \((.+)\) -->\s*$")
COMMAND = re.compile(r"^\s*(build/evalhost|evalhost|make|cp|cmake|\.venv/bin/\S+|sed|tools/\S+\.sh)(\s|$)")


def blocks():
    """[(info, text, line, skip_reason)] for every fenced block of README."""
    lines = README.read_text(encoding="utf-8").splitlines()
    out, i = [], 0
    while i < len(lines):
        m = FENCE.match(lines[i])
        if not m:
            i += 1
            continue
        indent, info, start = m.group(1), m.group(2), i
        body = []
        i += 1
        while i < len(lines) and lines[i].strip() != "```":
            body.append(lines[i][len(indent):] if lines[i].startswith(indent) else lines[i])
            i += 1
        prev = next((lines[k] for k in range(start - 1, -1, -1) if lines[k].strip()), "")
        skip = SKIP.match(prev)
        out.append((info, "\n".join(body) + "\n", start + 1, skip.group(1) if skip else None))
        i += 1
    return out


def clean_env():
    env = {k: v for k, v in os.environ.items() if k not in ("EVALHOST_PATH", "SLURM_PROCID", "RANK")}
    return env


@pytest.fixture(scope="module")
def checkout(tmp_path_factory):
    """The tracked files the commands use, build/evalhost, and make run's result."""
    root = tmp_path_factory.mktemp("clone")
    files = subprocess.run(["git", "-C", str(SRC), "ls-files", "config", "examples", "scripts", "lua"],
                           capture_output=True, text=True, check=True).stdout.split()
    assert files, "git ls-files found nothing to copy"
    for f in files:
        (root / f).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(SRC / f, root / f)
    (root / "build").mkdir()
    os.symlink(BIN, root / "build" / "evalhost")
    # what `make run` runs after building (Makefile: run)
    r = subprocess.run(["build/evalhost", "scripts/two_stage.lua", "config/example.yaml", "--set",
                        "run.out=outputs/example", "--resume"], cwd=root, capture_output=True, text=True,
                       timeout=300, env=clean_env())
    assert r.returncode == 0, r.stderr
    return root


def test_readme_has_runnable_blocks_and_skips_say_why():
    b = blocks()
    runnable = [x for x in b if x[0] == "sh" and x[3] is None]
    assert len(runnable) >= 5, "README lost its runnable command blocks"
    for info, text, line, skip in b:
        if skip is not None:
            assert info == "sh" and len(skip) > 8, f"README.md:{line}: a skip marker on a non-sh block or without a reason"


def test_no_command_hides_in_an_unlabeled_block():
    # ```text is an explicit "not commands" (outputs, synopses)
    hidden = [f"README.md:{line}: {l.strip()}" for info, text, line, _ in blocks() if info == ""
              for l in text.splitlines() if COMMAND.match(l)]
    assert not hidden, "commands outside ```sh blocks (label the block sh, outputs text):\n" + "\n".join(hidden)


def test_no_command_calls_a_bare_evalhost():
    """After `make run` there is no `evalhost` on the PATH: commands name build/evalhost."""
    bare = [f"README.md:{line}: {l.strip()}" for info, text, line, skip in blocks() if info == "sh" and skip is None
            for l in text.splitlines() if re.search(r"(^|\s)evalhost\s", l)]
    assert not bare, "\n".join(bare)


def test_every_sh_block_runs_as_printed(checkout):
    failures = []
    for info, text, line, skip in blocks():
        if info != "sh" or skip is not None:
            continue
        r = subprocess.run(["bash", "-euo", "pipefail", "-c", text], cwd=checkout, capture_output=True, text=True,
                           timeout=600, env=clean_env())
        if r.returncode != 0:
            failures.append(f"README.md:{line} (exit {r.returncode}):\n{text}{r.stderr[-1500:]}")
    assert not failures, "\n\n".join(failures)


def test_every_yaml_block_passes_the_schema(tmp_path):
    noop = tmp_path / "noop.lua"
    noop.write_text("return 0\n")
    bad = []
    for k, (info, text, line, _) in enumerate(blocks()):
        if info != "yaml":
            continue
        cfg = tmp_path / f"block{k}.yaml"
        cfg.write_text(text, encoding="utf-8")
        r = subprocess.run([str(BIN), str(noop), str(cfg)], capture_output=True, text=True, timeout=60)
        if r.returncode != 0:
            bad.append(f"README.md:{line}: {r.stderr.strip()}")
    assert not bad, "\n".join(bad)
