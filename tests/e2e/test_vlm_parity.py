"""Vision preprocessing parity: evalhost.vlm.preprocess against the
transformers image processor AutoImageProcessor picks (in this venv, without
torchvision: Qwen2VLImageProcessorPil) for Qwen2.5-VL and Qwen3-VL configs,
on awkward sizes.  Patches within the float32 roundings of rescale and
normalize (patch_tolerance; in practice equal), grids equal."""
import json
import os

import numpy as np
import pytest
from PIL import Image

import tolerance
from conftest import run_dump


CONFIGS = {
    # Qwen2.5-VL's preprocessor_config.json
    "qwen25vl": {"min_pixels": 3136, "max_pixels": 12845056, "patch_size": 14, "temporal_patch_size": 2,
                 "merge_size": 2, "image_mean": [0.48145466, 0.4578275, 0.40821073],
                 "image_std": [0.26862954, 0.26130258, 0.27577711],
                 "image_processor_type": "Qwen2VLImageProcessor", "processor_class": "Qwen2_5_VLProcessor"},
    # Qwen3-VL's (size keys, patch 16)
    "qwen3vl": {"size": {"longest_edge": 16777216, "shortest_edge": 65536}, "patch_size": 16,
                "temporal_patch_size": 2, "merge_size": 2, "image_mean": [0.5, 0.5, 0.5],
                "image_std": [0.5, 0.5, 0.5], "image_processor_type": "Qwen2VLImageProcessorFast",
                "processor_class": "Qwen3VLProcessor"},
    # a small budget, so big images shrink a lot
    "small": {"min_pixels": 3136, "max_pixels": 200000, "patch_size": 14, "temporal_patch_size": 2,
              "merge_size": 2, "image_processor_type": "Qwen2VLImageProcessor"},
}

# (width, height): ok ones and the ones both sides refuse
SIZES = [(27, 1000), (1000, 27), (4000, 3000), (333, 517), (2, 2), (57, 59), (28, 28), (14, 42), (1023, 767),
         (300, 200), (640, 481), (481, 640), (1999, 1001)]  # (300, 200), (640, 481): Pillow goes vertical first


def make_image(w, h, seed):
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w]
    smooth = np.stack([(xx * 255 // max(w - 1, 1)), (yy * 255 // max(h - 1, 1)), ((xx + yy) * 7 % 256)], -1)
    noise = rng.integers(0, 256, (h, w, 3))
    mix = np.where(rng.random((h, w, 1)) < 0.5, smooth, noise)
    return Image.fromarray(mix.astype(np.uint8), "RGB")


def run_ours(img_path, cfg_path, out_path):
    env = dict(os.environ, VLM_IMAGE=str(img_path), VLM_CONFIG=str(cfg_path), VLM_OUT=str(out_path))
    run_dump("vlm_dump.lua", "test_vlm_pre", [img_path, cfg_path, out_path], env, 300)
    data = out_path.read_bytes()
    head, _, rest = data.partition(b"\n")
    if head.startswith(b"ERROR"):
        return head.decode()[6:], None, None
    t, gh, gw, tokens, rows, dim = map(int, head.split())
    return (t, gh, gw), tokens, np.frombuffer(rest, dtype=np.float32).reshape(rows, dim)


@pytest.fixture(scope="module")
def processors(tmp_path_factory):
    from transformers import AutoImageProcessor
    out = {}
    for name, cfg in CONFIGS.items():
        d = tmp_path_factory.mktemp(name)
        (d / "preprocessor_config.json").write_text(json.dumps(cfg))
        out[name] = (d / "preprocessor_config.json", AutoImageProcessor.from_pretrained(str(d)))
    return out


def patch_tolerance(proc):
    """From the arithmetic: the resized pixels are bytes on both sides (PIL's
    resampling, which ours matches exactly), so a value differs only by the
    float32 roundings of rescale and normalize — ours rounds after the
    multiply, the subtract and the divide, the reference at most once more
    when it casts — each at most 2^-24 relative to the largest value the
    steps reach, max((1 - mean) / std, mean / std) over the channels."""
    mean = np.atleast_1d(np.asarray(proc.image_mean if proc.do_normalize else 0.0, dtype=np.float64))
    std = np.atleast_1d(np.asarray(proc.image_std if proc.do_normalize else 1.0, dtype=np.float64))
    m = float(np.max(np.maximum((1 - mean) / std, mean / std)))
    # four roundings: tolerance.py's worst case (below its probabilistic bound for so few)
    return tolerance.rounded(4, tolerance.U32, False, max(m, 1.0))


@pytest.mark.parametrize("cfg_name", list(CONFIGS))
@pytest.mark.parametrize("size", SIZES, ids=lambda s: f"{s[0]}x{s[1]}")
def test_patches_match(processors, cfg_name, size, tmp_path):
    if cfg_name != "qwen25vl" and size == (4000, 3000):
        pytest.skip("one 4000x3000 run is enough")
    cfg_path, proc = processors[cfg_name]
    img = make_image(*size, seed=size[0] * 7919 + size[1])
    img_path = tmp_path / "img.png"
    img.save(img_path)
    ref = proc(images=Image.open(img_path), return_tensors="np")
    want = ref["pixel_values"].astype(np.float32)
    want_grid = tuple(int(x) for x in ref["image_grid_thw"][0])
    grid, tokens, got = run_ours(img_path, cfg_path, tmp_path / "out.bin")
    assert not isinstance(grid, str), grid
    assert grid == want_grid
    assert tokens == want_grid[0] * want_grid[1] * want_grid[2] // (proc.merge_size ** 2)
    assert got.shape == want.shape
    diff = float(np.max(np.abs(got - want)))
    tol = patch_tolerance(proc)
    print(f"{cfg_name} {size}: grid {grid} max abs diff {diff:g} (tolerance {tol:.3g})")
    assert diff <= tol


@pytest.mark.parametrize("size,why", [((1, 1), "too small"), ((1, 300), "too small"), ((3, 900), "aspect ratio")])
def test_bad_sizes_rejected(processors, size, why, tmp_path):
    cfg_path, _ = processors["qwen25vl"]
    img_path = tmp_path / "img.png"
    make_image(*size, seed=1).save(img_path)
    err, _, _ = run_ours(img_path, cfg_path, tmp_path / "out.bin")
    assert isinstance(err, str) and why in err, err


def test_bad_config_rejected(tmp_path):
    img_path = tmp_path / "img.png"
    make_image(64, 64, seed=2).save(img_path)
    cfg = tmp_path / "preprocessor_config.json"
    cfg.write_text(json.dumps({"patch_size": "fourteen"}))
    err, _, _ = run_ours(img_path, cfg, tmp_path / "out.bin")
    assert "patch_size must be an integer" in err
    cfg.write_text(json.dumps({"resample": 2}))
    err, _, _ = run_ours(img_path, cfg, tmp_path / "out.bin")
    assert "resample 2 is not supported" in err
    cfg.write_text("{\"patch_size\": 14,")
    err, _, _ = run_ours(img_path, cfg, tmp_path / "out.bin")
    assert "not valid JSON" in err
