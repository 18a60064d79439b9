#!/usr/bin/env bash
# tools/gpu/check.sh — the CUDA path proven in one command (issue 21).  Run
# on the GPU machine from the repository root, with the kit of `make
# gpu-kit` in .gpu-kit/ (or --kit DIR):
#
#   tools/gpu/check.sh [--dry-run] [--kit DIR] [--python PY] [--out DIR] [--budget S] [--only a,b]
#
# Through this workplace's device tool: run with command
# "tools/gpu/check.sh", carry [".gpu-kit"] (it is git-ignored) and
# timeout_s 540; check.json and check.log come back from $OUT.
#
# 1. machine: card, driver, nvcc, the Python's torch and transformers
# 2. kit:     the .deb files unpacked with dpkg -x into a private prefix (their
#             .pc files pointed at it, pkgconf wrapped), the wheels installed
#             with pip --no-index --target (on PYTHONPATH after the image's own)
# 3. build:   CMake against that Python's torch (whatever its version),
#             EVALHOST_HTTP=OFF (no libcurl there), ninja
# 4. parity:  native judge (dense, MoE) and editor on cuda, float32 and
#             bfloat16, against the committed references; max differences
# 5. swap:    tools/bench/swap at 20 GB and 60 GB: load GB/s beside a plain
#             pinned copy of the same bytes, unload s, cudaHostRegister s
# 6. shapes:  tools/bench/real_shape.py at the real widths (layers cut):
#             the judge on 1 MP pairs, the editor at 1024², 4 steps, beside
#             transformers / diffusers
# 7. two_stage: scripts/two_stage.lua on examples/benchmark.json with the
#             native fixtures on cuda: exchanges and bytes from the report
# 8. overlap: the chunked load (overlap_load: true, tools/gpu/overlap.py):
#             judge outputs bit-identical to the blocking load, and the swap
#             time left visible to the schedule at 20 GB
#
# Each step writes its result as it finishes into $OUT/check.json (temp +
# rename) and its output into $OUT/check.log, so a run cut off at its limit
# still returns what it measured (the issue's order: parity, swap, shapes,
# two_stage; the overlap last).  --budget (default 480 s; 2400 with
# --dry-run, whose compile on a small CI machine is slow) bounds the whole
# run: a step gets what is left, and one that cannot start in time is
# recorded as skipped.  --dry-run (no CUDA; CI runs it): every step runs on
# the CPU where it can (parity, a 0.2 GB swap, two_stage: the plumbing), a
# step that needs a GPU says so and is skipped.  Exit status: 0 when no step
# failed.
set -uo pipefail
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
DRY=0
KIT=$ROOT/.gpu-kit
PY=
OUT_DIR=${OUT:-$ROOT/outputs/gpu-check}
BUDGET=
ONLY=
while [ $# -gt 0 ]; do
  case $1 in
    --dry-run) DRY=1 ;;
    --kit) KIT=$2; shift ;;
    --python) PY=$2; shift ;;
    --out) OUT_DIR=$2; shift ;;
    --budget) BUDGET=$2; shift ;;
    --only) ONLY=$2; shift ;;
    -h|--help) sed -n '2,/^set -uo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    *) echo "check.sh: unknown argument '$1' (see --help)" >&2; exit 2 ;;
  esac
  shift
done
# 480 s there (a command gets 10 minutes, the machine's start comes first);
# a dry run on a shared 2-core CI machine may compile for much longer
[ -n "$BUDGET" ] || BUDGET=$([ "$DRY" = 1 ] && echo 2400 || echo 480)
BUILD_MAX=$([ "$DRY" = 1 ] && echo 2000 || echo 300)
# the GPU machine's python3 holds its torch; here the project's venv does
if [ -z "$PY" ]; then
  if [ "$DRY" = 1 ] && [ -x "$ROOT/.venv/bin/python" ]; then PY=$ROOT/.venv/bin/python; else PY=$(command -v python3); fi
fi
WORK=${GPU_WORK:-$ROOT/build-gpu-check}     # ignored by git; kept between calls on a warm machine
BUILD=$WORK/build
PREFIX=$WORK/prefix
mkdir -p "$OUT_DIR" "$WORK/results"
LOG=$OUT_DIR/check.log
JSON=$OUT_DIR/check.json
: > "$LOG"
exec > >(tee -a "$LOG") 2>&1
T0=$(date +%s)
RESULT() { "$PY" "$ROOT/tools/gpu/result.py" "$JSON" "$@"; }
say() { printf '[check %4ds] %s\n' "$(( $(date +%s) - T0 ))" "$*"; }
left() { echo $(( BUDGET - ($(date +%s) - T0) )); }
FAILED=0

RESULT init "dry_run=$DRY" "python=$PY" "budget_s=$BUDGET" "commit=$(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo ?)"
CUDA=0
if [ "$DRY" = 0 ]; then
  CUDA=$("$PY" -c 'import torch; print(1 if torch.cuda.is_available() else 0)' 2>/dev/null || echo 0)
  [ "$CUDA" = 1 ] || say "NOTE: no CUDA device through $PY: the GPU steps are skipped (this is a dry run in effect)"
fi
DEVICE=cpu; [ "$CUDA" = 1 ] && DEVICE=cuda

# step NAME MAX_SECONDS NEEDS_GPU FUNCTION: runs FUNCTION under a timeout of
# min(MAX, what is left), records ok/failed/timeout/skipped with its JSON.
step() {
  local name=$1 max=$2 gpu=$3 fn=$4 t l rc note
  if [ -n "$ONLY" ] && [[ ",$ONLY," != *",$name,"* ]]; then return 0; fi
  if [ "$gpu" = gpu ] && [ "$CUDA" = 0 ]; then
    say "$name: skipped: no CUDA here ($( [ "$DRY" = 1 ] && echo "--dry-run" || echo "torch.cuda.is_available() is false"))"
    RESULT step "$name" skipped 0 "no CUDA"
    return 0
  fi
  l=$(left)
  if [ "$l" -lt 20 ]; then
    say "$name: skipped: ${l} s of the ${BUDGET} s budget left"
    RESULT step "$name" skipped 0 "out of budget"
    return 0
  fi
  [ "$max" -gt "$l" ] && max=$l
  say "== $name (at most ${max} s)"
  t=$(date +%s)
  rm -f "$WORK/results/$name.json"
  STEP_TIMEOUT=$max "$fn"
  rc=$?
  t=$(( $(date +%s) - t ))
  note=$(cat "$WORK/results/$name.note" 2>/dev/null || true)
  rm -f "$WORK/results/$name.note"
  if [ "$rc" = 0 ]; then
    RESULT step "$name" ok "$t" "$note" "$WORK/results/$name.json"; say "$name: ok in ${t} s${note:+ ($note)}"
  elif [ "$rc" = 124 ] || [ "$rc" = 137 ]; then
    RESULT step "$name" timeout "$t" "cut off after ${max} s; $note" "$WORK/results/$name.json"; say "$name: TIMEOUT after ${t} s"; FAILED=1
  else
    RESULT step "$name" failed "$t" "rc $rc; $note" "$WORK/results/$name.json"; say "$name: FAILED (rc $rc) in ${t} s"; FAILED=1
  fi
}
note() { echo "$*" > "$WORK/results/$CUR.note"; }
run_to() { timeout --kill-after=5 "$STEP_TIMEOUT" "$@"; }

# --- 1. machine ---------------------------------------------------------------
do_machine() {
  CUR=machine
  run_to "$PY" - "$WORK/results/machine.json" <<'EOF'
import json, platform, shutil, subprocess, sys
def out(cmd):
    try:
        return subprocess.run(cmd, capture_output=True, text=True, timeout=30).stdout.strip()
    except (OSError, subprocess.TimeoutExpired):
        return None
m = {"host": platform.node(), "kernel": platform.release(), "python": sys.version.split()[0], "cpus": __import__("os").cpu_count()}
try:
    import torch
    m["torch"] = torch.__version__
    m["torch_cuda"] = torch.version.cuda
    m["cuda_available"] = torch.cuda.is_available()
    if torch.cuda.is_available():
        p = torch.cuda.get_device_properties(0)
        m["gpu"] = {"name": p.name, "memory_gib": round(p.total_memory / 2**30, 1), "sm": f"{p.major}.{p.minor}",
                    "multiprocessors": p.multi_processor_count}
except Exception as e:   # the report says what is missing; the build step fails on it
    m["torch_error"] = repr(e)
try:
    import transformers
    m["transformers"] = transformers.__version__
except Exception as e:
    m["transformers_error"] = repr(e)
if shutil.which("nvidia-smi"):
    m["nvidia_smi"] = out(["nvidia-smi", "--query-gpu=name,driver_version,memory.total,pcie.link.gen.max,pcie.link.width.max",
                           "--format=csv,noheader"])
for tool, args in (("nvcc", ["--version"]), ("cmake", ["--version"]), ("ninja", ["--version"]), ("cc", ["--version"]),
                   ("c++", ["--version"]), ("dpkg", ["--version"]), ("pkg-config", ["--version"])):
    path = shutil.which(tool)
    m[tool] = (out([path] + args) or "").splitlines()[-1 if tool == "nvcc" else 0] if path else None
json.dump(m, open(sys.argv[1], "w"), indent=1)
for k, v in m.items():
    print(f"  {k}: {v}")
EOF
}

# --- 2. kit -------------------------------------------------------------------
do_kit() {
  CUR=kit
  [ -f "$KIT/MANIFEST" ] || { echo "no kit at $KIT (make gpu-kit on a machine with apt and PyPI, then send .gpu-kit along)"; return 1; }
  command -v dpkg >/dev/null || { echo "dpkg is not on this machine: cannot unpack the .deb files"; return 1; }
  rm -rf "$PREFIX" "$WORK/site"
  mkdir -p "$PREFIX/bin" "$WORK/site"
  local n=0 f
  for f in "$KIT"/deb/*.deb; do dpkg -x "$f" "$PREFIX" || return 1; n=$((n + 1)); done
  # the .pc files say /usr; point them at the prefix (libdeflate's says
  # libdir=/usr/lib where its library is in the multiarch folder)
  local multi=$PREFIX/usr/lib/x86_64-linux-gnu
  for f in "$multi"/pkgconfig/*.pc "$PREFIX"/usr/share/pkgconfig/*.pc; do
    [ -f "$f" ] || continue
    sed -i -E "s#^(prefix|exec_prefix|libdir|includedir)=/usr#\1=$PREFIX/usr#; s#^libdir=$PREFIX/usr/lib\$#libdir=$multi#" "$f"
  done
  cat > "$PREFIX/bin/pkg-config" <<EOF
#!/bin/sh
# the kit's pkgconf, seeing the kit's .pc files only
LD_LIBRARY_PATH=$multi\${LD_LIBRARY_PATH:+:\$LD_LIBRARY_PATH} PKG_CONFIG_LIBDIR=$multi/pkgconfig:$PREFIX/usr/share/pkgconfig exec $PREFIX/usr/bin/pkgconf "\$@"
EOF
  chmod +x "$PREFIX/bin/pkg-config"
  "$PREFIX/bin/pkg-config" --modversion lua5.4 libcjson yaml-0.1 libturbojpeg libpcre2-8 libwebp libxxhash libutf8proc libdeflate \
    > "$WORK/results/kit.versions" || { echo "the kit's pkg-config cannot resolve every module"; return 1; }
  local w
  w=$(ls "$KIT"/wheels/*.whl 2>/dev/null | wc -l)
  if [ "$w" -gt 0 ]; then
    run_to "$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --disable-pip-version-check \
      --target "$WORK/site" "$KIT"/wheels/*.whl || return 1
  fi
  "$PY" - "$KIT/MANIFEST" "$WORK/results/kit.json" "$n" "$w" <<'EOF'
import json, sys
rows = [l.split() for l in open(sys.argv[1]) if l.strip() and not l.startswith("#")]
json.dump({"debs": int(sys.argv[3]), "wheels": int(sys.argv[4]), "bytes": sum(int(r[3]) for r in rows),
           "packages": {r[1]: r[2] for r in rows}}, open(sys.argv[2], "w"), indent=1)
EOF
  note "$n .deb, $w wheels"
}

kit_env() {   # what later steps need from the kit
  export PYTHONPATH=${PYTHONPATH:+$PYTHONPATH:}$WORK/site   # after the image's own packages
  export EVALHOST_SRC=$ROOT
}

# --- 3. build -----------------------------------------------------------------
do_build() {
  CUR=build
  local torch_prefix nvcc launcher=()
  torch_prefix=$("$PY" -c 'import torch.utils; print(torch.utils.cmake_prefix_path)') || { echo "no torch through $PY"; return 1; }
  # a CUDA libtorch's CMake files need the CUDA compiler (nvcc) to configure
  if [ "$CUDA" = 1 ]; then
    nvcc=$(command -v nvcc || ls /usr/local/cuda/bin/nvcc 2>/dev/null || true)
    [ -n "$nvcc" ] || { echo "a CUDA torch needs nvcc to configure against, and there is none (PATH, /usr/local/cuda)"; return 1; }
    export PATH=$(dirname "$nvcc"):$PATH
    export TORCH_CUDA_ARCH_LIST=${TORCH_CUDA_ARCH_LIST:-$("$PY" -c 'import torch; print("%d.%d" % torch.cuda.get_device_capability())')}
  fi
  # warnings are not errors here: another compiler's new warning must not
  # cost the one run a GPU machine gives (they are errors in make test)
  command -v ccache >/dev/null && launcher=(-DCMAKE_C_COMPILER_LAUNCHER=ccache -DCMAKE_CXX_COMPILER_LAUNCHER=ccache)
  local gen=(-G Ninja); command -v ninja >/dev/null || gen=()
  run_to cmake -S "$ROOT" -B "$BUILD" "${gen[@]}" "${launcher[@]}" -DCMAKE_BUILD_TYPE=Release \
    -DEVALHOST_HTTP=OFF -DEVALHOST_TORCH=ON -DEVALHOST_WERROR=OFF -DEVALHOST_PYTHON="$PY" \
    -DPKG_CONFIG_EXECUTABLE="$PREFIX/bin/pkg-config" -DSTB_INCLUDE_DIR="$PREFIX/usr/include/stb" \
    -DCMAKE_PREFIX_PATH="$torch_prefix" > "$WORK/cmake.log" 2>&1 \
    || { tail -40 "$WORK/cmake.log"; return 1; }
  grep -E "evalhost:|PyTorch: CUDA detected|CUDA nvcc is" "$WORK/cmake.log"
  # the binary is all the later steps run
  run_to cmake --build "$BUILD" -j "$(nproc)" --target evalhost > "$WORK/build.log" 2>&1 \
    || { tail -60 "$WORK/build.log"; return 1; }
  "$BUILD/evalhost" --version || return 1
  # the build has no http backend: it must say so by name
  EVALHOST_BIN=$BUILD/evalhost EVALHOST_SRC=$ROOT EVALHOST_HAVE_HTTP=OFF run_to "$PY" -m pytest -q -p no:cacheprovider \
    "$ROOT/tests/e2e/test_http_off.py" || return 1
  # the libraries it runs with come from the kit and the given torch
  ldd "$BUILD/evalhost" | grep -E "lua|cjson|yaml|turbojpeg|webp|pcre2|xxhash|utf8proc|deflate|torch|c10|curl" | sed 's/^/  /'
  "$PY" - "$WORK/results/build.json" "$torch_prefix" "$BUILD/evalhost" <<'EOF'
import json, subprocess, sys
import torch
ldd = subprocess.run(["ldd", sys.argv[3]], capture_output=True, text=True).stdout
json.dump({"torch": torch.__version__, "torch_cuda": torch.version.cuda, "torch_prefix": sys.argv[2],
           "curl_linked": "libcurl" in ldd, "kit_libs": sum(1 for l in ldd.splitlines() if "build-gpu-check/prefix" in l or "/prefix/usr/lib" in l)},
          open(sys.argv[1], "w"), indent=1)
EOF
  note "against torch $("$PY" -c 'import torch; print(torch.__version__)')"
}

# --- 4. parity ----------------------------------------------------------------
do_parity() {
  CUR=parity
  [ "$DEVICE" = cpu ] && echo "no CUDA: the parity step runs on the CPU here (it checks the step; the CUDA figures need a GPU)"
  run_to "$PY" "$ROOT/tools/gpu/parity.py" --bin "$BUILD/evalhost" --device "$DEVICE" --json "$WORK/results/parity.json"
}

# --- 5. swap ------------------------------------------------------------------
do_swap() {
  CUR=swap
  local sizes="20 60" rc=0 gb
  [ "$DEVICE" = cpu ] && { sizes=0.2; echo "no CUDA: the swap bench at 0.2 GB on the CPU (plumbing only; GB/s need a GPU)"; }
  for gb in $sizes; do
    # the seed's .to() beside it only at 20 GB: at 60 GB it costs a minute
    SWAP_JSON=$WORK/results/swap_$gb.json SEED_REPS=$([ "$gb" = 60 ] && echo 0 || echo 1) PY=$PY \
      EVALHOST_BIN=$BUILD/evalhost run_to "$ROOT/tools/bench/swap" "$gb" 2000 3 bfloat16 || rc=1
  done
  "$PY" - "$WORK/results/swap.json" "$WORK"/results/swap_*.json <<'EOF'
import json, os, sys
doc = {}
for p in sys.argv[2:]:
    try:
        doc[os.path.basename(p)[5:-5] + " GB"] = json.load(open(p))
    except (OSError, ValueError):
        pass
json.dump(doc, open(sys.argv[1], "w"), indent=1)
EOF
  rm -f "$WORK"/results/swap_*.json
  return $rc
}

# --- 8. overlap ---------------------------------------------------------------
do_overlap() {
  CUR=overlap
  [ "$DEVICE" = cpu ] && echo "no CUDA: the overlap step on the CPU's copy path at 0.2 GB (checks the step)"
  run_to "$PY" "$ROOT/tools/gpu/overlap.py" --bin "$BUILD/evalhost" --device "$DEVICE" \
    $([ "$DEVICE" = cuda ] && echo "--gb 20") --json "$WORK/results/overlap.json"
}

# --- 6. real shapes -----------------------------------------------------------
do_shapes() {
  CUR=shapes
  local rc=0 rs=$ROOT/tools/bench/real_shape.py
  [ -f "$rs" ] || { echo "no tools/bench/real_shape.py in this tree"; note "no real_shape.py"; return 1; }
  # real widths, layers cut (tools/make_real_shape.py), each side its own
  # process: the judge (Qwen3-VL-30B-A3B) on 1 MP pairs in batches of 8,
  # logits mode; the editor (Qwen-Image-Edit-2509, CFG on) at 1024², 4 steps
  run_to "$PY" "$rs" judge --model qwen3-vl-30b-a3b --mp 1.0 --pairs 8 --batch 8 --modes logits \
    --device cuda:0 --dtype bfloat16 --bin "$BUILD/evalhost" --dir "$WORK/real" --keep \
    --out "$WORK/results/shapes_judge.json" || rc=1
  run_to "$PY" "$rs" editor --size 1024 --steps 4 --images 1 --device cuda:0 --dtype bfloat16 \
    --bin "$BUILD/evalhost" --dir "$WORK/real" --keep --out "$WORK/results/shapes_editor.json" || rc=1
  "$PY" -c 'import json, os, sys; json.dump({k: json.load(open(p)) for k, p in zip(("judge", "editor"), sys.argv[2:]) if os.path.exists(p)}, open(sys.argv[1], "w"), indent=1)' \
    "$WORK/results/shapes.json" "$WORK/results/shapes_judge.json" "$WORK/results/shapes_editor.json"
  return $rc
}

# --- 7. two_stage -------------------------------------------------------------
do_two_stage() {
  CUR=two_stage
  local out=$WORK/two_stage cfg=$WORK/two_stage.yaml cats="物理, 环境, 社会, 因果, 指代" n=25 x=9
  # the CPU takes minutes over all 25 pairs: two categories check the step
  [ "$DEVICE" = cpu ] && { cats="物理, 环境"; n=10; x=3; echo "no CUDA: two of the five categories on the CPU"; }
  rm -rf "$out"
  # keep_both false: the tiny models would both fit; the run is to move them
  cat > "$cfg" <<EOF
benchmark:
  data_path: $ROOT/examples/benchmark.json
  categories: [$cats]
diffusion_model:
  backend: native
  params: {path: $ROOT/tests/data/qwenimage, device: $DEVICE, num_inference_steps: 2, width: 128, height: 96}
judge: {backend: native, path: $ROOT/tests/data/qwen3vl/dense, device: $DEVICE}
prompts: {language: zh}
run: {out: $out, keep_both: false}
EOF
  run_to "$BUILD/evalhost" "$ROOT/scripts/two_stage.lua" "$cfg" --quiet || return 1
  "$PY" - "$out" "$WORK/results/two_stage.json" "$n" "$x" <<'EOF'
import glob, json, sys
files = glob.glob(sys.argv[1] + "/results/evaluation_report_*.json")
rep = json.load(open(files[0], encoding="utf-8"))
sw, pairs = rep.get("swaps", {}), rep.get("pairs", [])
doc = {"exchanges": sw.get("count"), "bytes": sw.get("bytes"), "swap_seconds": sw.get("seconds"),
       "pairs": len(pairs), "scored": sum(1 for p in pairs if p.get("score") is not None), "timings": rep.get("timings")}
json.dump(doc, open(sys.argv[2], "w"), indent=1)
print(f"  two_stage: {doc['pairs']} pairs, {doc['scored']} scored, {doc['exchanges']} exchanges, "
      f"{(doc['bytes'] or 0) / 1e6:.1f} MB moved in {doc['swap_seconds'] or 0:.3g} s")
n, x = int(sys.argv[3]), int(sys.argv[4])   # pairs, and 2C-1 exchanges for C categories
ok = doc["pairs"] == n and doc["scored"] == n and doc["exchanges"] == x
sys.exit(0 if ok else 1)
EOF
  note "$("$PY" -c 'import json,sys; d=json.load(open(sys.argv[1])); print("%s exchanges, %.1f MB" % (d["exchanges"], (d["bytes"] or 0) / 1e6))' "$WORK/results/two_stage.json" 2>/dev/null)"
}

# everything below runs from main, read whole before it starts: an edit of
# this file during a run cannot change what the run does
main() {
say "evalhost GPU check: $( [ "$DRY" = 1 ] && echo "DRY RUN, " )device $DEVICE, python $PY, out $OUT_DIR, budget ${BUDGET} s"
step machine 60 any do_machine
step kit 120 any do_kit
kit_env
step build "$BUILD_MAX" any do_build
if [ -x "$BUILD/evalhost" ]; then
  step parity 120 any do_parity
  step swap 240 any do_swap
  step shapes 200 gpu do_shapes
  step two_stage "$([ "$CUDA" = 1 ] && echo 120 || echo 240)" any do_two_stage
  step overlap 150 any do_overlap
else
  say "no evalhost binary: the steps after the build are skipped"
fi
say "summary ($(( $(date +%s) - T0 )) s; $JSON, $LOG):"
RESULT summary
exit $FAILED
}
main
