"""One Torch (issue 24): with Debian's libtorch-dev installed beside the
venv's torch, a fresh configure takes every Torch library (c10 included)
from the Torch EVALHOST_PYTHON imports, and every binary of the build links
one c10. Without that, TorchConfig's find_library takes /usr/lib's libc10.so,
its find_package(Caffe2 PATHS ...) takes Debian's Caffe2Targets.cmake (imported
targets torch, torch_cpu, c10 at /usr/lib/<arch>/lib*.so.1.13), and the
binaries abort at start (two c10s)."""
import glob
import os
import pathlib
import subprocess

import re

import pytest

from conftest import BIN, SRC

PYTHON = os.environ.get("EVALHOST_PYTHON", str(SRC / ".venv" / "bin" / "python"))
SYSTEM_C10 = sorted(glob.glob("/usr/lib/*/libc10.so") + glob.glob("/usr/lib/libc10.so"))


def torch_root():
    r = subprocess.run([PYTHON, "-c", "import torch.utils; print(torch.utils.cmake_prefix_path)"],
                       capture_output=True, text=True, timeout=120)
    if r.returncode != 0:
        pytest.skip(f"{PYTHON} has no torch: {r.stderr.strip()[-200:]}")
    return pathlib.Path(r.stdout.strip()).parents[1].resolve()


def configure(tmp_path, body, *defs):
    proj = tmp_path / "proj"
    proj.mkdir()
    (proj / "CMakeLists.txt").write_text("cmake_minimum_required(VERSION 3.18)\nproject(probe C CXX)\n" + body)
    r = subprocess.run(["cmake", "-S", str(proj), "-B", str(tmp_path / "b"), f"-DEVALHOST_PYTHON={PYTHON}", *defs],
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-2000:]
    cache = {}
    for line in (tmp_path / "b" / "CMakeCache.txt").read_text().splitlines():
        if ":FILEPATH=" in line:
            k, v = line.split(":FILEPATH=", 1)
            cache[k] = v
    return cache, (tmp_path / "b" / "libs.txt").read_text().split(";")


DUMP = 'file(WRITE ${CMAKE_BINARY_DIR}/libs.txt "${TORCH_LIBRARIES};${c10_LIBRARY};${TORCH_LIBRARY}")\n'


def torch_named(paths):
    return [p for p in paths if os.path.isabs(p) and os.path.basename(p).startswith(("libc10", "libtorch", "libcaffe2"))]


@pytest.mark.skipif(not SYSTEM_C10, reason="Debian's libtorch-dev is not installed (apt-get install libtorch-dev): "
                    "nothing else on this machine to take c10 from")
def test_fresh_configure_takes_every_torch_library_from_the_one_torch(tmp_path):
    root = torch_root()
    # the hazard is real here: TorchConfig found through CMAKE_PREFIX_PATH alone takes the system's c10
    (tmp_path / "naive").mkdir()
    naive, _ = configure(tmp_path / "naive", 'execute_process(COMMAND "${EVALHOST_PYTHON}" -c '
                         '"import torch.utils; print(torch.utils.cmake_prefix_path)" OUTPUT_VARIABLE p '
                         'OUTPUT_STRIP_TRAILING_WHITESPACE)\nlist(APPEND CMAKE_PREFIX_PATH "${p}")\n'
                         'find_package(Torch REQUIRED)\n' + DUMP)
    assert naive["c10_LIBRARY"] in SYSTEM_C10, naive["c10_LIBRARY"]
    # evalhost's block: every Torch library from the one Torch
    (tmp_path / "ours").mkdir()
    cache, libs = configure(tmp_path / "ours", f'set(EVALHOST_TORCH ON)\ninclude("{SRC}/cmake/torch.cmake")\n'
                            'if(NOT EH_HAVE_TORCH)\n  message(FATAL_ERROR "no torch")\nendif()\n' + DUMP)
    found = torch_named(libs) + torch_named(v for k, v in cache.items() if k.endswith("_LIBRARY"))
    assert any(os.path.basename(p) == "libc10.so" for p in found)
    for p in found:
        assert pathlib.Path(p).resolve().is_relative_to(root), f"{p} is not from {root}"
    # a build folder whose cache already holds the system's c10 (configured before the fix) is mended
    (tmp_path / "stale").mkdir()
    cache, libs = configure(tmp_path / "stale", f'set(EVALHOST_TORCH ON)\ninclude("{SRC}/cmake/torch.cmake")\n' + DUMP,
                            f"-Dc10_LIBRARY:FILEPATH={SYSTEM_C10[0]}")
    assert pathlib.Path(cache["c10_LIBRARY"]).resolve().is_relative_to(root), cache["c10_LIBRARY"]
    assert SYSTEM_C10[0] not in libs


def elf_binaries(folder):
    for p in sorted(folder.iterdir()):
        if p.is_file() and os.access(p, os.X_OK) and p.read_bytes()[:4] == b"\x7fELF":
            yield p


@pytest.mark.skipif(os.environ.get("EVALHOST_HAVE_TORCH") != "ON", reason="built without libtorch")
def test_every_binary_links_one_c10():
    root = torch_root()
    bins = list(elf_binaries(BIN.parent))
    assert BIN in bins
    for b in bins:
        out = subprocess.run(["ldd", str(b)], capture_output=True, text=True, timeout=60).stdout
        c10 = {line.split("=>")[1].split("(")[0].strip() for line in out.splitlines()
               if "libc10.so" in line and "=>" in line and "libc10_" not in line.split("=>")[0]}
        assert len(c10) <= 1, f"{b.name} links {sorted(c10)}"
        for path in c10:
            assert pathlib.Path(path).resolve().is_relative_to(root), f"{b.name} links {path}, not {root}'s"


def link_line_torch_files(build, target):
    text = (build / "CMakeFiles" / f"{target}.dir" / "link.txt").read_text()
    return sorted({m for m in re.findall(r"[^\s\"']+", text)
                   if os.path.isabs(m) and re.match(r"lib(c10|torch|caffe2)", os.path.basename(m))})


@pytest.mark.skipif(not SYSTEM_C10, reason="Debian's libtorch-dev is not installed (apt-get install libtorch-dev): "
                    "nothing else on this machine to take c10 from")
def test_fresh_configure_of_evalhost_links_only_the_one_torch(tmp_path):
    """The real project, not a probe: evalhost's and a replay test's link lines name only the one Torch's
    files, in a fresh build folder and in one whose cache names Debian's Caffe2 package (made before the fix)."""
    root = torch_root()
    system_caffe2 = sorted(glob.glob("/usr/lib/*/cmake/Caffe2/Caffe2Config.cmake"))
    stale = [f"-DCaffe2_DIR:PATH={pathlib.Path(system_caffe2[0]).parent}"] if system_caffe2 else []
    for name, extra in (("fresh", []), ("stale", stale)):
        build = tmp_path / name
        r = subprocess.run(["cmake", "-S", str(SRC), "-B", str(build), f"-DEVALHOST_PYTHON={PYTHON}",
                            "-DEVALHOST_TORCH=ON", *extra], capture_output=True, text=True, timeout=300)
        assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-2000:]
        assert "building the torch backend against" in r.stdout
        for target in ("evalhost", "test_torch_backend"):
            files = link_line_torch_files(build, target)
            assert any(os.path.basename(f).startswith("libc10") for f in files), (target, files)
            for f in files:
                assert pathlib.Path(f).resolve().is_relative_to(root), f"{name}: {target} links {f}, not {root}'s"
