"""Shared fixtures for the end-to-end tests: the built binary and the repo."""
import os
import pathlib
import subprocess
import tempfile

import pytest

SRC = pathlib.Path(os.environ.get("EVALHOST_SRC", pathlib.Path(__file__).resolve().parents[2]))
BIN = pathlib.Path(os.environ.get("EVALHOST_BIN", SRC / "build" / "evalhost"))


def run_evalhost(*args, cwd=None, timeout=120, env=None, input=None):
    """Runs the evalhost binary; returns CompletedProcess with text output."""
    full_env = dict(os.environ)
    full_env.pop("SLURM_PROCID", None)
    full_env.pop("RANK", None)
    if env:
        full_env.update(env)
    return subprocess.run([str(BIN), *map(str, args)], cwd=cwd or SRC, capture_output=True, text=True,
                          timeout=timeout, env=full_env, input=input)


# The head of the Lua scripts the tests run with the binary: `eh`, the
# parameters P (JSON in $EH_T), must() raising a nil's error at its caller,
# out() writing a value as one JSON line of stdout.
LUA_PRELUDE = r"""
local eh = require "evalhost"
local P = eh.json.decode(os.getenv("EH_T"))
local function must(v, e) if v == nil then error(tostring(e), 2) end return v end
local function out(v) io.stdout:write(eh.json.encode(v), "\n") end
"""


def nothing_ran(r, out):
    """A config refused before the script ran: no swap, no script output, no output folder."""
    assert "[swap]" not in r.stderr and "evalhost two_stage:" not in r.stderr, r.stderr
    assert not out.exists(), "an output folder was made before the config was checked"


def have_torch():
    """Whether this evalhost has the libtorch backends: CMake says so through
    EVALHOST_HAVE_TORCH; run by hand without it, ask the binary."""
    flag = os.environ.get("EVALHOST_HAVE_TORCH")
    if flag:
        return flag.upper() not in ("OFF", "0", "FALSE", "NO")
    probe = 'local m, e = require("evalhost").model.open({backend = "torch", path = "x.pt"}, "judge") print(e)'
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as f:
        f.write(probe)
    try:
        p = subprocess.run([str(BIN), f.name], capture_output=True, text=True, timeout=60)
    finally:
        os.unlink(f.name)
    return "without libtorch" not in p.stdout


def run_dump(lua_script, driver, driver_args, env, timeout):
    """A parity dump: the evalhost binary running tests/e2e/<lua_script> when
    it is built, else the unit-test driver's --dump (the bench builds only
    those); returns the finished process, its exit status checked."""
    if os.access(BIN, os.X_OK):
        cmd = [str(BIN), str(SRC / "tests" / "e2e" / lua_script)]
    else:
        drv = BIN.parent / driver
        if not os.access(drv, os.X_OK):
            pytest.fail(f"neither {BIN} nor {drv} is built")
        cmd = [str(drv), "--dump", *map(str, driver_args)]
    r = subprocess.run(cmd, capture_output=True, env=env, cwd=SRC, timeout=timeout)
    assert r.returncode == 0, r.stderr.decode(errors="replace")
    return r


@pytest.fixture(scope="session")
def binary():
    """The built binary's path; a missing one fails the test that needs it."""
    if not os.access(BIN, os.X_OK):
        pytest.fail("evalhost binary not found at %s (build it or set EVALHOST_BIN)" % BIN)
    return str(BIN)


@pytest.fixture
def evalhost():
    return run_evalhost


@pytest.fixture
def src():
    return SRC
