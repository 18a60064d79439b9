#!/usr/bin/env python3
"""Builds the tiny random Qwen-Image parts of the native editor's parity
tests with diffusers (0.42.1), and the reference outputs our libtorch
forward must match.

    make_qwenimage_fixture.py [--plus] [OUT_DIR]    (default tests/data/qwenimage)

--plus writes only the Edit-2509/2511 part (below) from the fixture there.

Writes, in diffusers layout:
  OUT_DIR/vae/config.json, diffusion_pytorch_model.safetensors
      AutoencoderKLQwenImage: the real model's structure (4 levels, three
      2x downsamplings, mid attention, z_dim 16, its latents_mean/std) at
      base_dim 4;
  OUT_DIR/transformer/config.json, diffusion_pytorch_model.safetensors
      QwenImageTransformer2DModel: 2 dual-stream blocks, 2 heads of 16,
      joint_attention_dim 24;
  OUT_DIR/text_encoder/config.json, model.safetensors
      Qwen2_5_VLForConditionalGeneration: 2 text layers (hidden 24, 2 heads,
      1 KV head), a 2-block vision tower (window 56: one windowed, one full
      block); reference/te_embeds.npy: _get_qwen_prompt_embeds of two
      prompts; te_image_*.npy: one prompt with an image;
  OUT_DIR/scheduler/scheduler_config.json  Qwen-Image-Edit's FlowMatchEuler config;
  OUT_DIR/reference/ (little-endian float32 .npy):
      vae_image.npy      [1,3,1,H,W] in [-1,1], the encoder's input
      vae_latents.npy    [1,16,1,H/8,W/8]  encode → latent_dist.mode(),
                          normalised as QwenImageEditPipeline does:
                          (z - latents_mean) / latents_std
      vae_decoded.npy    [1,3,1,H,W]  decode(latents / (1 / std) + mean) as the
                          pipeline writes it, clamped
                          to [-1,1] by diffusers, from vae_latents.npy
      dit_*.npy          one transformer call (see dit_reference below)
      step_*.npy         one FlowMatchEulerDiscreteScheduler.step
      noise_{float32,bfloat16}.npy  the pipeline's packed noise for seed 42
      packed_latents.npy the VAE latents (4x6 corner) through _pack_latents
      edit_{prompt,negative,out}.npy  a whole 2-step edit through
                          QwenImageEditPipeline from prompt embeddings
  reference.json "scheduler": the pipeline's sigmas and timesteps for
      several step counts and image sequence lengths
  OUT_DIR/reference/reference.json: shapes and the transformer's call args.
  OUT_DIR/../qwenimage_plus, OUT_DIR/../qwenimage_2511: QwenImageEditPlusPipeline
      layouts linked to OUT_DIR's components (2511: zero_cond_t), with
      reference/plus_out.npy (two pictures) and plus_single_sub8.npy (2511).
Weights are drawn with a fixed seed; the VAE's RMSNorm gammas and conv
biases are perturbed so a wrong parameter order shows in the outputs.
"""
import json
import os
import sys

import numpy as np
import torch

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, HERE)
import make_tokenizer_fixture as mtf  # noqa: E402

VOCAB = 384            # the tokenizer's size; Qwen's special tokens are ids 0..6
_TOKENIZER = []


def pipeline_index(cls):
    """A Qwen-Image-Edit pipeline's model_index.json (diffusers 0.42.1's
    components); cls: QwenImageEditPipeline or QwenImageEditPlusPipeline."""
    return {"_class_name": cls, "_diffusers_version": "0.42.1",
            "processor": ["transformers", "Qwen2VLProcessor"],
            "scheduler": ["diffusers", "FlowMatchEulerDiscreteScheduler"],
            "text_encoder": ["transformers", "Qwen2_5_VLForConditionalGeneration"],
            "tokenizer": ["transformers", "Qwen2Tokenizer"],
            "transformer": ["diffusers", "QwenImageTransformer2DModel"],
            "vae": ["diffusers", "AutoencoderKLQwenImage"]}


def tokenizer():
    """A byte-level BPE trained here with Qwen's special tokens (the real
    processor's tokenizer.json has 151k tokens; ours keeps the text
    encoder's embedding small)."""
    if not _TOKENIZER:
        _TOKENIZER.append(mtf.train(VOCAB, 3, False))
    return _TOKENIZER[0]


def specials():
    return {s: tokenizer().token_to_id(s) for s in mtf.SPECIALS}


# the Qwen2VLImageProcessor of Qwen/Qwen-Image-Edit's processor/, but
# max_pixels 28*28*96 instead of 12845056: the pipeline hands it the
# ~1 MP image, which it then shrinks to at most 96 tokens (small tests)
PROCESSOR = dict(patch_size=14, merge_size=2, temporal_patch_size=2, min_pixels=3136, max_pixels=28 * 28 * 96)


def processor(out, write=True):
    """processor/ (tokenizer.json, tokenizer_config.json,
    preprocessor_config.json), tokenizer/ and model_index.json, as the
    Hub's Qwen-Image-Edit lays them out; returns the Qwen2VLProcessor
    (write False: the one of the files already there)."""
    from transformers import Qwen2TokenizerFast, Qwen2VLImageProcessor, Qwen2VLProcessor
    from transformers.processing_utils import ProcessorMixin
    # the class check looks the video processor up, which needs torchvision
    # (not in the venv); there is no video here
    ProcessorMixin.check_argument_for_proper_class = lambda self, name, arg: None
    d = os.path.join(out, "processor")
    os.makedirs(d, exist_ok=True)
    if write:
        tokenizer().save(os.path.join(d, "tokenizer.json"))
    fast = Qwen2TokenizerFast(tokenizer_file=os.path.join(d, "tokenizer.json"), eos_token="<|im_end|>",
                              pad_token="<|endoftext|>", unk_token=None, bos_token=None)
    proc = Qwen2VLProcessor(image_processor=Qwen2VLImageProcessor(**PROCESSOR), tokenizer=fast)
    if not write:
        return proc
    proc.image_processor.save_pretrained(d)
    fast.save_pretrained(d)
    fast.save_pretrained(os.path.join(out, "tokenizer"))
    with open(os.path.join(out, "model_index.json"), "w") as f:
        json.dump(pipeline_index("QwenImageEditPipeline"), f, indent=2)
        f.write("\n")
    return proc

H, W = 40, 56          # not square, and 5x7 latents: a swapped axis shows


def npy(path, t):
    np.save(path, np.ascontiguousarray(t.detach().to(torch.float32).numpy()).astype("<f4"))


def perturb(model, seed):
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in sorted(model.named_parameters()):
            if name.endswith("gamma"):
                p.copy_(1.0 + 0.3 * torch.randn(p.shape, generator=g))
            elif name.endswith("bias"):
                p.copy_(0.05 * torch.randn(p.shape, generator=g))


def vae_reference(out):
    from diffusers import AutoencoderKLQwenImage
    torch.manual_seed(1234)
    vae = AutoencoderKLQwenImage(base_dim=4, z_dim=16, dim_mult=[1, 2, 4, 4], num_res_blocks=2,
                                 attn_scales=[], temperal_downsample=[False, True, True])
    perturb(vae, 99)
    vae.eval()
    d = os.path.join(out, "vae")
    vae.save_pretrained(d, safe_serialization=True)
    g = torch.Generator().manual_seed(7)
    # a smooth picture plus noise, in the pipeline's [-1,1]
    yy, xx = torch.meshgrid(torch.linspace(-1, 1, H), torch.linspace(-1, 1, W), indexing="ij")
    img = torch.stack([torch.sin(3 * xx), torch.cos(2 * yy), xx * yy]) * 0.8
    img = (img + 0.2 * torch.rand(3, H, W, generator=g) - 0.1).clamp(-1, 1)
    img = img[None, :, None]
    cfg = vae.config
    mean = torch.tensor(cfg.latents_mean).view(1, cfg.z_dim, 1, 1, 1)
    std = torch.tensor(cfg.latents_std).view(1, cfg.z_dim, 1, 1, 1)
    with torch.no_grad():
        z = vae.encode(img).latent_dist.mode()
        lat = (z - mean) / std
        dec = vae.decode(lat / (1.0 / std) + mean, return_dict=False)[0]
    r = os.path.join(out, "reference")
    npy(os.path.join(r, "vae_image.npy"), img)
    npy(os.path.join(r, "vae_latents.npy"), lat)
    npy(os.path.join(r, "vae_decoded.npy"), dec)
    return {"vae": {"image": list(img.shape), "latents": list(lat.shape), "decoded": list(dec.shape),
                    "latents_absmax": float(lat.abs().max()), "decoded_std": float(dec.std())}}


def dit_reference(out):
    from diffusers import QwenImageTransformer2DModel
    torch.manual_seed(4321)
    dit = QwenImageTransformer2DModel(patch_size=2, in_channels=64, out_channels=16, num_layers=2,
                                      attention_head_dim=16, num_attention_heads=2, joint_attention_dim=24,
                                      axes_dims_rope=(4, 6, 6))
    g = torch.Generator().manual_seed(5)
    with torch.no_grad():
        # diffusers zero-inits the output projection and the modulations'
        # last layers are small: draw everything so each block matters
        for name, p in sorted(dit.named_parameters()):
            p.copy_(torch.randn(p.shape, generator=g) * (0.02 if p.ndim == 1 else 1.0 / p.shape[-1] ** 0.5))
            if name.endswith("norm.weight") or "norm_q" in name or "norm_k" in name or "norm_added" in name:
                p.add_(1.0)
    dit.eval()
    d = os.path.join(out, "transformer")
    dit.save_pretrained(d, safe_serialization=True)
    # an edit call: noised latents (3x4 packed tokens) then the reference
    # image's latents (3x4), text of 7 tokens, timestep 0.6
    lh, lw, txt = 3, 4, 7
    hidden = torch.randn(1, 2 * lh * lw, 64, generator=g)
    enc = torch.randn(1, txt, 24, generator=g)
    mask = torch.ones(1, txt, dtype=torch.long)
    t = torch.tensor([0.6])
    shapes = [[(1, lh, lw), (1, lh, lw)]]
    with torch.no_grad():
        o = dit(hidden_states=hidden, encoder_hidden_states=enc, encoder_hidden_states_mask=mask, timestep=t,
                img_shapes=shapes, return_dict=False)[0]
    r = os.path.join(out, "reference")
    npy(os.path.join(r, "dit_hidden.npy"), hidden)
    npy(os.path.join(r, "dit_encoder.npy"), enc)
    npy(os.path.join(r, "dit_out.npy"), o)
    return {"transformer": {"timestep": 0.6, "img_shapes": [[1, lh, lw], [1, lh, lw]], "txt_len": txt,
                            "hidden": list(hidden.shape), "encoder": list(enc.shape), "out": list(o.shape)}}


# Qwen/Qwen-Image-Edit's scheduler/scheduler_config.json
SCHEDULER = {"base_image_seq_len": 256, "base_shift": 0.5, "invert_sigmas": False, "max_image_seq_len": 8192,
             "max_shift": 0.9, "num_train_timesteps": 1000, "shift": 1.0, "shift_terminal": 0.02,
             "stochastic_sampling": False, "time_shift_type": "exponential", "use_beta_sigmas": False,
             "use_dynamic_shifting": True, "use_exponential_sigmas": False, "use_karras_sigmas": False}


def scheduler_reference(out):
    """QwenImageEditPipeline's schedule (sigmas linspace(1, 1/N, N), mu from
    the packed image sequence length) for a few N and lengths, and one
    Euler step on fixed tensors."""
    from diffusers import FlowMatchEulerDiscreteScheduler
    from diffusers.pipelines.qwenimage.pipeline_qwenimage_edit import calculate_shift
    sch = FlowMatchEulerDiscreteScheduler(**SCHEDULER)
    sch.save_config(os.path.join(out, "scheduler"))
    cases = []
    for steps, seq in [(2, 24), (4, 1024), (8, 4096), (50, 4096), (50, 9000)]:
        mu = calculate_shift(seq, sch.config.base_image_seq_len, sch.config.max_image_seq_len,
                             sch.config.base_shift, sch.config.max_shift)
        sch.set_timesteps(sigmas=np.linspace(1.0, 1 / steps, steps), mu=mu)
        cases.append({"steps": steps, "image_seq_len": seq, "mu": mu,
                      "sigmas": [float(x) for x in sch.sigmas], "timesteps": [float(x) for x in sch.timesteps]})
    # one step: the second of the 4-step schedule, through scheduler.step
    g = torch.Generator().manual_seed(11)
    sample = torch.randn(1, 24, 64, generator=g)
    model_out = torch.randn(1, 24, 64, generator=g)
    mu = calculate_shift(1024, 256, 8192, 0.5, 0.9)
    sch.set_timesteps(sigmas=np.linspace(1.0, 1 / 4, 4), mu=mu)
    sch.set_begin_index(0)
    sch.step(model_out, sch.timesteps[0], sample.clone(), return_dict=False)
    prev = sch.step(model_out, sch.timesteps[1], sample, return_dict=False)[0]
    r = os.path.join(out, "reference")
    npy(os.path.join(r, "step_sample.npy"), sample)
    npy(os.path.join(r, "step_model_out.npy"), model_out)
    npy(os.path.join(r, "step_prev.npy"), prev)
    return {"scheduler": {"cases": cases, "step": {"steps": 4, "image_seq_len": 1024, "index": 1}}}


def noise_reference(out):
    """prepare_latents' noise for seed 42 (float32 and bfloat16), packed by
    the pipeline's own _pack_latents, and the VAE latents packed."""
    from diffusers import QwenImageEditPipeline as P
    r = os.path.join(out, "reference")
    for name, dt in [("float32", torch.float32), ("bfloat16", torch.bfloat16)]:
        z = torch.randn((2, 1, 16, 6, 8), generator=torch.Generator("cpu").manual_seed(42), dtype=dt)
        npy(os.path.join(r, f"noise_{name}.npy"), P._pack_latents(z, 2, 16, 6, 8))
    lat = torch.from_numpy(np.load(os.path.join(r, "vae_latents.npy")))[:, :, :, :4, :6]
    npy(os.path.join(r, "packed_latents.npy"), P._pack_latents(lat.contiguous(), 1, 16, 4, 6))
    return {"noise": {"seed": 42, "shape": [2, 1, 16, 6, 8]},
            "packed_latents": "vae_latents.npy[:, :, :, :4, :6] packed"}


def edit_image():
    """the edit's input: 300x200, which the pipeline resizes (LANCZOS) to
    1248x832; pixel (x, y, c) = (3x + 5y + 70c + (xy mod 13)) mod 256, which
    the C test draws too"""
    from PIL import Image
    y, x = np.mgrid[0:200, 0:300]
    px = np.stack([(3 * x + 5 * y + 70 * c + (x * y) % 13) % 256 for c in range(3)], -1).astype(np.uint8)
    return Image.fromarray(px)


def edit_reference(out):
    """A whole QwenImageEditPipeline edit from the fixture's VAE,
    transformer and scheduler, given prompt embeddings (the text encoder is
    not part of these fixtures): 2 steps, true CFG 4.0, seed 42, output
    128x128 (the reference image at 1248x832: 4056 image tokens)."""
    from diffusers import (AutoencoderKLQwenImage, FlowMatchEulerDiscreteScheduler, QwenImageEditPipeline,
                           QwenImageTransformer2DModel)
    pipe = QwenImageEditPipeline(scheduler=FlowMatchEulerDiscreteScheduler.from_pretrained(out, subfolder="scheduler"),
                                 vae=AutoencoderKLQwenImage.from_pretrained(out, subfolder="vae"),
                                 text_encoder=None, tokenizer=None, processor=None,
                                 transformer=QwenImageTransformer2DModel.from_pretrained(out, subfolder="transformer"))
    pipe.set_progress_bar_config(disable=True)
    g = torch.Generator().manual_seed(9)
    pe, ne = torch.randn(1, 7, 24, generator=g), torch.randn(1, 5, 24, generator=g)
    pm, nm = torch.ones(1, 7, dtype=torch.long), torch.ones(1, 5, dtype=torch.long)
    with torch.no_grad():
        img = pipe(image=edit_image(), prompt_embeds=pe, prompt_embeds_mask=pm, negative_prompt_embeds=ne,
                   negative_prompt_embeds_mask=nm, true_cfg_scale=4.0, num_inference_steps=2, height=128, width=128,
                   generator=torch.Generator("cpu").manual_seed(42), output_type="pt").images
    r = os.path.join(out, "reference")
    npy(os.path.join(r, "edit_prompt.npy"), pe)
    npy(os.path.join(r, "edit_negative.npy"), ne)
    npy(os.path.join(r, "edit_out.npy"), img)
    return {"edit": {"size": [300, 200], "resized": [1248, 832], "out": list(img.shape), "steps": 2, "true_cfg_scale": 4.0, "seed": 42}}


TE_IDS = [[7, 3, 19, 260, 2, 44, 5, 31, 12], [9, 360, 27, 8, 50, 1]]   # the prompts' tokens after the prefix


class _Inputs(dict):
    """A processor's output whose .to() is a no-op (the inputs are on the CPU)."""
    def to(self, device):
        return self


def prompt_embeds(te, prompts, image, **inputs):
    """QwenImageEditPipeline._get_qwen_prompt_embeds on te with the processor
    replaced by the given inputs (ids with a 64-token prefix to drop), float32."""
    from diffusers import QwenImageEditPipeline
    pipe = QwenImageEditPipeline.__new__(QwenImageEditPipeline)
    pipe.prompt_template_encode = "{}"
    pipe.prompt_template_encode_start_idx = 64
    pipe.processor = lambda **kw: _Inputs(**inputs)
    pipe.text_encoder = te
    return QwenImageEditPipeline._get_qwen_prompt_embeds(pipe, prompts, image, torch.device("cpu"), torch.float32)


def text_encoder_reference(out):
    """The Qwen2.5-VL text encoder as QwenImageEditPipeline runs it
    (_get_qwen_prompt_embeds, diffusers' own code) on two prompts without
    an image: a 64-token template prefix (random ids standing in for the
    tokenised template; the tokenizer is not part of this fixture) then
    the prompt's ids, right-padded as the processor pads; the last layer's
    hidden states with the prefix dropped, zero-padded, and their mask."""
    from transformers import Qwen2_5_VLConfig, Qwen2_5_VLForConditionalGeneration
    sp = specials()
    cfg = Qwen2_5_VLConfig(
        text_config=dict(vocab_size=VOCAB, hidden_size=24, intermediate_size=40, num_hidden_layers=2,
                         num_attention_heads=2, num_key_value_heads=1, rms_norm_eps=1e-6, rope_theta=1000000.0,
                         max_position_embeddings=512, tie_word_embeddings=False,
                         rope_scaling={"type": "mrope", "mrope_section": [2, 2, 2]}),
        vision_config=dict(depth=2, hidden_size=16, intermediate_size=24, num_heads=2, out_hidden_size=24,
                           patch_size=14, spatial_merge_size=2, temporal_patch_size=2, window_size=56,
                           fullatt_block_indexes=[1]),
        image_token_id=sp["<|image_pad|>"], video_token_id=sp["<|video_pad|>"],
        vision_start_token_id=sp["<|vision_start|>"], vision_end_token_id=sp["<|vision_end|>"])
    torch.manual_seed(11)
    te = Qwen2_5_VLForConditionalGeneration(cfg).eval()
    with torch.no_grad():
        for name, p in te.named_parameters():
            if name.endswith("bias") or "norm" in name:
                p.add_(0.3 * torch.randn(p.shape))   # non-trivial biases and norm weights
    te.save_pretrained(os.path.join(out, "text_encoder"), safe_serialization=True)
    g = torch.Generator().manual_seed(5)
    prefix = torch.randint(7, VOCAB, (64,), generator=g).tolist()   # no special tokens
    rows = [prefix + t for t in TE_IDS]
    L = max(len(r) for r in rows)
    ids = torch.tensor([r + [0] * (L - len(r)) for r in rows])
    mask = torch.tensor([[1] * len(r) + [0] * (L - len(r)) for r in rows])

    with torch.no_grad():
        emb, emask = prompt_embeds(te, ["a", "b"], None, input_ids=ids, attention_mask=mask)
    npy(os.path.join(out, "reference", "te_embeds.npy"), emb)
    return {"text_encoder": {"ids": ids.tolist(), "mask": mask.tolist(), "drop": 64, "embeds": list(emb.shape),
                             "embeds_mask": emask.tolist()}}


def text_encoder_image_reference(out):
    """_get_qwen_prompt_embeds of one prompt with an image (84x112, the
    real Qwen2VLImageProcessor built here: a 6x8 patch grid, 12 merged
    tokens, windows of 2x2 merged tokens, some partial): the ids (a
    64-token prefix, then <|vision_start|>, 12 pads, <|vision_end|>, the
    prompt; the image rows are kept) and pixel_values for the C test;
    te_image_mrope.npy: the same with get_rope_index's positions."""
    from transformers import Qwen2_5_VLForConditionalGeneration, Qwen2VLImageProcessor
    from PIL import Image
    te = Qwen2_5_VLForConditionalGeneration.from_pretrained(os.path.join(out, "text_encoder")).eval()
    y, x = np.mgrid[0:84, 0:112]
    img = Image.fromarray(np.stack([(7 * x + 3 * y + 90 * c) % 256 for c in range(3)], -1).astype(np.uint8))
    proc = Qwen2VLImageProcessor(patch_size=14, merge_size=2, temporal_patch_size=2, min_pixels=28 * 28,
                                 max_pixels=28 * 28 * 64)
    pv = proc(images=img, return_tensors="pt")
    grid = pv["image_grid_thw"]
    n_pad = int(grid.prod()) // 4
    g = torch.Generator().manual_seed(6)
    prefix = torch.randint(7, VOCAB, (64,), generator=g).tolist()
    sp = specials()
    pad = sp["<|image_pad|>"]
    ids = torch.tensor([prefix + [sp["<|vision_start|>"]] + [pad] * n_pad + [sp["<|vision_end|>"]] + [40, 17, 33, 2, 140]])
    mask = torch.ones_like(ids)

    with torch.no_grad():
        emb, _ = prompt_embeds(te, ["a"], img, input_ids=ids, attention_mask=mask, pixel_values=pv["pixel_values"],
                               image_grid_thw=grid)
    # what transformers computes with the processor's mm_token_type_ids (1 on
    # the image pads), which diffusers 0.42.1 does not pass on: the
    # multimodal rotary positions of get_rope_index instead of 0..L-1
    with torch.no_grad():
        hs = te(input_ids=ids, attention_mask=mask, pixel_values=pv["pixel_values"], image_grid_thw=grid,
                mm_token_type_ids=(ids == pad).int(), output_hidden_states=True).hidden_states[-1][:, 64:]
    r = os.path.join(out, "reference")
    npy(os.path.join(r, "te_image_mrope.npy"), hs)
    print("text encoder with an image: mrope vs sequential positions differ by", (hs - emb).abs().max().item())
    npy(os.path.join(r, "te_image_pixels.npy"), pv["pixel_values"])
    npy(os.path.join(r, "te_image_embeds.npy"), emb)
    return {"text_encoder_image": {"ids": ids[0].tolist(), "grid_thw": grid[0].tolist(), "drop": 64,
                                   "embeds": list(emb.shape)}}


PIPE_PROMPT = "把天空变成紫色, and add a red kite"
PIPE_NEGATIVE = " "
# Lightning's scheduler settings (lightx2v/Qwen-Image-Lightning): shift log 3, no terminal stretch
LIGHTNING = {"base_shift": float(np.log(3)), "max_shift": float(np.log(3)), "shift_terminal": None}


def pipeline(out, scheduler_overrides=None, cls=None):
    """QwenImageEditPipeline (or cls) from the fixture's own folders (the
    processor object from processor(), which needs no torchvision)."""
    from diffusers import (AutoencoderKLQwenImage, FlowMatchEulerDiscreteScheduler, QwenImageEditPipeline,
                           QwenImageTransformer2DModel)
    from transformers import Qwen2_5_VLForConditionalGeneration
    sch = FlowMatchEulerDiscreteScheduler.from_pretrained(out, subfolder="scheduler")
    if scheduler_overrides:
        sch = FlowMatchEulerDiscreteScheduler.from_config(sch.config, **scheduler_overrides)
    pipe = (cls or QwenImageEditPipeline)(
        scheduler=sch, vae=AutoencoderKLQwenImage.from_pretrained(out, subfolder="vae"),
        text_encoder=Qwen2_5_VLForConditionalGeneration.from_pretrained(os.path.join(out, "text_encoder")).eval(),
        tokenizer=None, processor=processor(out, write=False),
        transformer=QwenImageTransformer2DModel.from_pretrained(out, subfolder="transformer"))
    pipe.set_progress_bar_config(disable=True)
    return pipe


def pipeline_reference(out):
    """A whole edit from text, as a user runs the pipeline: the 300x200
    image, PIPE_PROMPT, negative prompt " ", true CFG 4.0, 2 steps, seed 42,
    output 128x96; and the processor's ids for the prompt (with the
    pipeline's resized image) and the negative prompt."""
    pipe = pipeline(out)
    img = edit_image()
    with torch.no_grad():
        res = pipe(image=img, prompt=PIPE_PROMPT, negative_prompt=PIPE_NEGATIVE, true_cfg_scale=4.0,
                   num_inference_steps=2, height=96, width=128,
                   generator=torch.Generator("cpu").manual_seed(42), output_type="pt").images
    r = os.path.join(out, "reference")
    npy(os.path.join(r, "pipeline_out.npy"), res)
    # the same in bfloat16 on the CPU (text encoder, transformer and VAE)
    pipe.to(torch.bfloat16)
    with torch.no_grad():
        res16 = pipe(image=img, prompt=PIPE_PROMPT, negative_prompt=PIPE_NEGATIVE, true_cfg_scale=4.0,
                     num_inference_steps=2, height=96, width=128,
                     generator=torch.Generator("cpu").manual_seed(42), output_type="pt").images
    npy(os.path.join(r, "pipeline_out_bf16.npy"), res16)
    from diffusers.pipelines.qwenimage.pipeline_qwenimage_edit import calculate_dimensions
    w, h, _ = calculate_dimensions(1024 * 1024, img.size[0] / img.size[1])
    prompt_image = pipe.image_processor.resize(img, h, w)
    ids = {}
    for name, text in [("prompt", PIPE_PROMPT), ("negative", PIPE_NEGATIVE)]:
        mi = pipe.processor(text=[pipe.prompt_template_encode.format(text)], images=prompt_image, padding=True,
                            return_tensors="pt")
        ids[name] = mi["input_ids"][0].tolist()
        grid = mi["image_grid_thw"][0].tolist()
    return {"pipeline": {"prompt": PIPE_PROMPT, "negative_prompt": PIPE_NEGATIVE, "true_cfg_scale": 4.0,
                         "steps": 2, "seed": 42, "width": 128, "height": 96, "out": list(res.shape),
                         "ids": ids, "grid_thw": grid, "drop": pipe.prompt_template_encode_start_idx}}


def lora_files(out):
    """Two LoRAs for the transformer: lora/kohya.safetensors in the naming
    the Lightning files use (diffusion_model. prefix, lora_down/lora_up,
    alpha 8 at rank 4), lora/peft.safetensors in diffusers' own (transformer.
    prefix, lora_A/lora_B, no alpha)."""
    from safetensors.torch import save_file
    g = torch.Generator().manual_seed(21)
    d = os.path.join(out, "lora")
    os.makedirs(d, exist_ok=True)
    dim = 32
    kohya = {}
    for layer in range(2):
        for mod, o, i in [("attn.to_q", dim, dim), ("attn.add_v_proj", dim, dim), ("img_mlp.net.2", dim, 4 * dim),
                          ("txt_mod.1", 6 * dim, dim)]:
            k = f"diffusion_model.transformer_blocks.{layer}.{mod}"
            kohya[k + ".lora_down.weight"] = 0.3 * torch.randn(4, i, generator=g)
            kohya[k + ".lora_up.weight"] = 0.3 * torch.randn(o, 4, generator=g)
            kohya[k + ".alpha"] = torch.tensor(8.0)
    kohya["diffusion_model.proj_out.lora_down.weight"] = 0.3 * torch.randn(4, dim, generator=g)
    kohya["diffusion_model.proj_out.lora_up.weight"] = 0.3 * torch.randn(64, 4, generator=g)
    kohya["diffusion_model.proj_out.alpha"] = torch.tensor(4.0)
    save_file(kohya, os.path.join(d, "kohya.safetensors"))
    peft = {}
    for k, o, i in [("transformer_blocks.1.attn.to_out.0", dim, dim), ("img_in", dim, 64)]:
        peft[f"transformer.{k}.lora_A.weight"] = 0.3 * torch.randn(2, i, generator=g)
        peft[f"transformer.{k}.lora_B.weight"] = 0.3 * torch.randn(o, 2, generator=g)
    save_file(peft, os.path.join(d, "peft.safetensors"))
    return [(os.path.join(d, "kohya.safetensors"), 1.0), (os.path.join(d, "peft.safetensors"), 0.5)]


def lora_reference(out):
    """Both LoRAs fused into the transformer (kohya at weight 1.0, peft at
    0.5) as diffusers' load_lora_weights + fuse_lora do: the state dicts
    through diffusers' own Qwen LoRA conversion (alpha / rank folded in),
    W += weight * B @ A; then a 4-step edit without CFG with Lightning's
    scheduler settings, seed 7, output 128x96."""
    from diffusers.loaders.lora_conversion_utils import _convert_non_diffusers_qwen_lora_to_diffusers
    from safetensors.torch import load_file
    pipe = pipeline(out, LIGHTNING)
    params = dict(pipe.transformer.named_parameters())
    with torch.no_grad():
        for path, weight in lora_files(out):
            sd = load_file(path)
            if not all(k.startswith("transformer.") for k in sd):   # what QwenImageLoraLoaderMixin converts
                sd = _convert_non_diffusers_qwen_lora_to_diffusers(sd)
            for k in sd:
                if k.endswith(".lora_A.weight"):
                    base = k[len("transformer."):-len(".lora_A.weight")]
                    b = sd[k.replace(".lora_A.", ".lora_B.")]
                    params[base + ".weight"].add_(weight * (b @ sd[k]))
        res = pipe(image=edit_image(), prompt=PIPE_PROMPT, true_cfg_scale=1.0, num_inference_steps=4, height=96,
                   width=128, generator=torch.Generator("cpu").manual_seed(7), output_type="pt").images
    npy(os.path.join(out, "reference", "lora_out.npy"), res)
    return {"lora": {"files": [["lora/kohya.safetensors", 1.0], ["lora/peft.safetensors", 0.5]],
                     "scheduler": LIGHTNING, "true_cfg_scale": 1.0, "steps": 4, "seed": 7, "width": 128,
                     "height": 96}}


PLUS_PROMPT = "put the red kite of picture 2 into picture 1"
PLUS_VARIANTS = [("qwenimage_plus", False), ("qwenimage_2511", True)]   # Edit-2509's layout; 2511's zero_cond_t


def second_image():
    """Picture 2: 160x240 (portrait, so the two VAE sizes differ: 832x1248);
    pixel (x, y, c) = (7x + 2y + 50c + (xy mod 7)) mod 256, drawn by the C
    test too"""
    from PIL import Image
    y, x = np.mgrid[0:240, 0:160]
    px = np.stack([(7 * x + 2 * y + 50 * c + (x * y) % 7) % 256 for c in range(3)], -1).astype(np.uint8)
    return Image.fromarray(px)


def plus_folders(out):
    """The Edit-2509/2511 layouts beside OUT_DIR: model_index.json naming
    QwenImageEditPlusPipeline, the components linked to OUT_DIR's (the
    2509 and 2511 checkpoints share Edit's architecture), 2511's
    transformer config with zero_cond_t."""
    parent, base = os.path.split(os.path.abspath(out))
    dirs = []
    for name, zero in PLUS_VARIANTS:
        d = os.path.join(parent, name)
        os.makedirs(os.path.join(d, "transformer"), exist_ok=True)
        os.makedirs(os.path.join(d, "reference"), exist_ok=True)
        for part in ["processor", "scheduler", "text_encoder", "tokenizer", "vae"]:
            link = os.path.join(d, part)
            if not os.path.lexists(link):
                os.symlink(os.path.join("..", base, part), link)
        link = os.path.join(d, "transformer", "diffusion_pytorch_model.safetensors")
        if not os.path.lexists(link):
            os.symlink(os.path.join("..", "..", base, "transformer", "diffusion_pytorch_model.safetensors"), link)
        with open(os.path.join(out, "transformer", "config.json")) as f:
            cfg = json.load(f)
        cfg["zero_cond_t"] = zero
        with open(os.path.join(d, "transformer", "config.json"), "w") as f:
            json.dump(cfg, f, indent=2)
            f.write("\n")
        with open(os.path.join(out, "model_index.json")) as f:
            index = json.load(f)
        index["_class_name"] = "QwenImageEditPlusPipeline"
        with open(os.path.join(d, "model_index.json"), "w") as f:
            json.dump(index, f, indent=2)
            f.write("\n")
        dirs.append(d)
    return dirs


def plus_reference(out):
    """For each Plus variant, an edit of two pictures (edit_image(), then
    second_image()) through QwenImageEditPlusPipeline: PLUS_PROMPT, negative
    prompt " ", true CFG 4.0, 2 steps, seed 42, 128x96 (plus_out.npy); and
    one picture with the output size left to the pipeline (the picture's
    ~1 MP size, 1248x832), 2 steps without CFG, seed 9 (plus_single_sub8.npy,
    every 8th row and column; the 2511 folder only).  (One step would be
    NaN: the config's shift_terminal stretch divides 0 by 0.)  The conditions are 480x320
    and 320x480 (CONDITION_IMAGE_SIZE), the VAE inputs 1248x832 and
    832x1248."""
    from diffusers import QwenImageEditPlusPipeline
    meta = {}
    for d, (name, zero) in zip(plus_folders(out), PLUS_VARIANTS):
        pipe = pipeline(d, cls=QwenImageEditPlusPipeline)
        assert bool(pipe.transformer.config.zero_cond_t) == zero
        with torch.no_grad():
            res = pipe(image=[edit_image(), second_image()], prompt=PLUS_PROMPT, negative_prompt=PIPE_NEGATIVE,
                       true_cfg_scale=4.0, num_inference_steps=2, height=96, width=128,
                       generator=torch.Generator("cpu").manual_seed(42), output_type="pt").images
        npy(os.path.join(d, "reference", "plus_out.npy"), res)
        entry = {"prompt": PLUS_PROMPT, "negative_prompt": PIPE_NEGATIVE, "true_cfg_scale": 4.0, "steps": 2,
                 "seed": 42, "width": 128, "height": 96, "zero_cond_t": zero, "out": list(res.shape)}
        if zero:
            with torch.no_grad():
                one = pipe(image=edit_image(), prompt=PIPE_PROMPT, true_cfg_scale=1.0, num_inference_steps=2,
                           generator=torch.Generator("cpu").manual_seed(9), output_type="pt").images
            # every 8th row and column: 12 MB in full
            npy(os.path.join(d, "reference", "plus_single_sub8.npy"), one[:, :, ::8, ::8])
            entry["single"] = {"prompt": PIPE_PROMPT, "steps": 2, "seed": 9, "out": list(one.shape),
                               "stored": "every 8th row and column"}
        with open(os.path.join(d, "reference", "reference.json"), "w") as f:
            json.dump({"plus": entry}, f, indent=1)
            f.write("\n")
        meta[name] = entry
    return meta


def text_encoder_images_reference(out):
    """_get_qwen_prompt_embeds of one prompt with two images (84x112 and
    56x84 through the small processor of text_encoder_image_reference:
    12 and 6 merged tokens, each run of pads framed as the Plus template
    frames them): te_images_{pixels,embeds,mrope}.npy and the ids."""
    from transformers import Qwen2_5_VLForConditionalGeneration, Qwen2VLImageProcessor
    from PIL import Image
    te = Qwen2_5_VLForConditionalGeneration.from_pretrained(os.path.join(out, "text_encoder")).eval()
    proc = Qwen2VLImageProcessor(patch_size=14, merge_size=2, temporal_patch_size=2, min_pixels=28 * 28,
                                 max_pixels=28 * 28 * 64)
    imgs = []
    for (h, w), k in [((84, 112), 7), ((56, 84), 5)]:
        y, x = np.mgrid[0:h, 0:w]
        imgs.append(Image.fromarray(np.stack([(k * x + 3 * y + 90 * c) % 256 for c in range(3)], -1)
                                    .astype(np.uint8)))
    pv = proc(images=imgs, return_tensors="pt")
    grid = pv["image_grid_thw"]
    g = torch.Generator().manual_seed(8)
    sp = specials()
    pad = sp["<|image_pad|>"]
    ids = torch.randint(7, VOCAB, (64,), generator=g).tolist()
    for i in range(2):
        ids += [40 + i, 17] + [sp["<|vision_start|>"]] + [pad] * (int(grid[i].prod()) // 4) + [sp["<|vision_end|>"]]
    ids = torch.tensor([ids + [33, 2, 140, 9]])
    with torch.no_grad():
        seq = te(input_ids=ids, pixel_values=pv["pixel_values"], image_grid_thw=grid,
                 output_hidden_states=True).hidden_states[-1][:, 64:]
        mro = te(input_ids=ids, pixel_values=pv["pixel_values"], image_grid_thw=grid,
                 mm_token_type_ids=(ids == pad).int(), output_hidden_states=True).hidden_states[-1][:, 64:]
    r = os.path.join(out, "reference")
    npy(os.path.join(r, "te_images_pixels.npy"), pv["pixel_values"])
    npy(os.path.join(r, "te_images_embeds.npy"), seq)
    npy(os.path.join(r, "te_images_mrope.npy"), mro)
    print("text encoder with two images: mrope vs sequential positions differ by", (mro - seq).abs().max().item())
    return {"text_encoder_images": {"ids": ids[0].tolist(), "grid_thw": grid.tolist(), "drop": 64,
                                    "embeds": list(seq.shape)}}


def plus_only(out):
    """--plus: the Edit-2509/2511 folders and references from the base
    fixture already there (its weights and references untouched), and the
    two-image text-encoder reference merged into its reference.json."""
    path = os.path.join(out, "reference", "reference.json")
    with open(path) as f:
        ref = json.load(f)
    ref.update(text_encoder_images_reference(out))
    with open(path, "w") as f:
        json.dump(ref, f, indent=1)
        f.write("\n")
    plus_reference(out)


def main():
    args = [a for a in sys.argv[1:] if a != "--plus"]
    out = args[0] if args else os.path.join(ROOT, "tests", "data", "qwenimage")
    os.makedirs(os.path.join(out, "reference"), exist_ok=True)
    torch.set_num_threads(1)
    if "--plus" in sys.argv[1:]:
        processor(out, write=False)   # the class-check patch
        plus_only(out)
        return
    processor(out)
    import diffusers
    ref = {"diffusers": diffusers.__version__, "torch": torch.__version__.split("+")[0]}
    ref.update(vae_reference(out))
    ref.update(dit_reference(out))
    ref.update(scheduler_reference(out))
    ref.update(noise_reference(out))
    ref.update(edit_reference(out))
    ref.update(text_encoder_reference(out))
    ref.update(text_encoder_image_reference(out))
    ref.update(pipeline_reference(out))
    ref.update(lora_reference(out))
    from diffusers.pipelines.qwenimage.pipeline_qwenimage_edit import calculate_dimensions
    sizes = [(300, 200), (1024, 1024), (640, 480), (480, 640), (1920, 1080), (100, 1000), (333, 777), (2000, 2001),
             (512, 384), (4000, 30)]
    ref["dimensions"] = [[w, h, *calculate_dimensions(1024 * 1024, w / h)[:2]] for w, h in sizes]
    ref.update(text_encoder_images_reference(out))
    with open(os.path.join(out, "reference", "reference.json"), "w") as f:
        json.dump(ref, f, indent=1)
        f.write("\n")
    plus_reference(out)


if __name__ == "__main__":
    main()
