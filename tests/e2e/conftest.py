"""Shared fixtures for the end-to-end tests: the built binary and the repo."""
import os
import pathlib
import subprocess

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


@pytest.fixture
def evalhost():
    return run_evalhost


@pytest.fixture
def src():
    return SRC
