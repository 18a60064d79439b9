#!/usr/bin/env python3
"""Builds the tiny random Qwen3-VL judges of the native parity tests with
transformers, and the reference outputs our libtorch forward must match.

    make_qwen3vl_fixture.py [OUT_DIR]    (default tests/data/qwen3vl)

For each of `dense` (Qwen3VLForConditionalGeneration) and `moe`
(Qwen3VLMoeForConditionalGeneration) it writes OUT_DIR/<kind>/:
  config.json, model.safetensors (float32), preprocessor_config.json,
  tokenizer.json (a byte-level BPE trained here with Qwen's special tokens),
  chat_template.jinja (Qwen3-VL's), generation_config.json,
  edited.png, original.png (the fixed judge images),
  reference.json: the request, the rendered prompt, input ids, grids, the
    logits of "0".."10" at the last position, probabilities and score, for
    float32 and bfloat16;
  logits_fp32.npy, logits_bf16.npy: the whole last-position logits row;
  and reference.json's "generate": transformers' greedy continuation (16 tokens),
  "variants": probabilities for other request shapes (no system prompt, one image).
Weights are drawn with a fixed seed and scaled up from transformers' init so
the distribution over the score tokens is far from uniform.
"""
import json
import os
import sys

import numpy as np
import torch
from PIL import Image

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, HERE)
import make_tokenizer_fixture as mtf  # noqa: E402

SYSTEM = "You are a strict judge of image edits. Reply with one integer from 0 to 10."
USER = "Instruction: make the sky purple.\nRate how well the edited image (first) follows it, given the original (second)."


def tokenizer_files(out):
    from transformers import PreTrainedTokenizerFast
    tok = mtf.train(500, 7, False)
    # "10" as one token, so the score distribution has all eleven values
    tok.add_tokens(["10"])
    path = os.path.join(out, "tokenizer.json")
    tok.save(path)
    fast = PreTrainedTokenizerFast(tokenizer_file=path, eos_token="<|im_end|>", pad_token="<|endoftext|>")
    return tok, fast


def configs(tok, kind):
    sp = {s: tok.token_to_id(s) for s in mtf.SPECIALS}
    vocab = (tok.get_vocab_size() + 63) // 64 * 64
    text = dict(vocab_size=vocab, hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                num_attention_heads=4, num_key_value_heads=2, head_dim=16, rms_norm_eps=1e-6,
                max_position_embeddings=4096, tie_word_embeddings=False,
                rope_parameters={"rope_type": "default", "rope_theta": 10000.0, "mrope_section": [2, 3, 3],
                                 "mrope_interleaved": True},
                bos_token_id=None, eos_token_id=sp["<|im_end|>"], pad_token_id=None)
    if kind == "moe":
        # 2 * moe_intermediate_size != hidden_size, so the experts' stored
        # layout is unambiguous (transformers transposes only on a shape mismatch)
        text.update(num_experts=4, num_experts_per_tok=2, moe_intermediate_size=48, decoder_sparse_step=1,
                    mlp_only_layers=[], norm_topk_prob=True)
    vision = dict(depth=2, hidden_size=32, intermediate_size=64, num_heads=2, patch_size=16,
                  temporal_patch_size=2, spatial_merge_size=2, out_hidden_size=64, num_position_embeddings=16,
                  deepstack_visual_indexes=[0], hidden_act="gelu_pytorch_tanh", in_channels=3)
    return dict(text_config=text, vision_config=vision, image_token_id=sp["<|image_pad|>"],
                video_token_id=sp["<|video_pad|>"], vision_start_token_id=sp["<|vision_start|>"],
                vision_end_token_id=sp["<|vision_end|>"], tie_word_embeddings=False)


def build(kind, cfg):
    if kind == "dense":
        from transformers import Qwen3VLConfig as C, Qwen3VLForConditionalGeneration as M
    else:
        from transformers import Qwen3VLMoeConfig as C, Qwen3VLMoeForConditionalGeneration as M
    torch.manual_seed(1234 if kind == "dense" else 4321)
    config = C(**cfg)
    config._attn_implementation = "sdpa"
    model = M(config).eval()
    with torch.no_grad():
        for name, p in model.named_parameters():
            if p.dim() == 1 and ("norm" in name):
                p.copy_(1.0 + 0.2 * torch.randn_like(p))
            elif p.dim() == 1:
                p.copy_(0.1 * torch.randn_like(p))
            else:
                fan_in = p.shape[-1] if p.dim() in (2, 3) else p[0].numel()
                p.copy_(torch.randn_like(p) * (1.5 / fan_in ** 0.5))
    return model


def images():
    rng = np.random.default_rng(5)
    yy, xx = np.mgrid[0:80, 0:112]
    a = np.stack([(xx * 2) % 256, (yy * 3) % 256, (xx + yy) % 256], -1).astype(np.uint8)
    a = np.clip(a.astype(int) + rng.integers(-20, 20, a.shape), 0, 255).astype(np.uint8)
    b = rng.integers(0, 256, (64, 64, 3)).astype(np.uint8)
    return Image.fromarray(a), Image.fromarray(b)


def main():
    out_root = sys.argv[1] if len(sys.argv) > 1 else os.path.join(ROOT, "tests", "data", "qwen3vl")
    from safetensors.torch import save_file
    from transformers import Qwen2VLImageProcessor
    template = open(os.path.join(ROOT, "tests", "data", "tokenizer", "qwen3_vl_chat_template.jinja")).read()
    for kind in ("dense", "moe"):
        out = os.path.join(out_root, kind)
        os.makedirs(out, exist_ok=True)
        tok, fast = tokenizer_files(out)
        cfg = configs(tok, kind)
        model = build(kind, cfg)
        model.config.save_pretrained(out)
        # experts in the Hub's layout [E, in, out] (transformers transposes
        # them at load), so the loader's conversion is exercised
        sd = {k: (v.transpose(1, 2) if ".mlp.experts." in k else v).contiguous()
              for k, v in model.state_dict().items()}
        save_file(sd, os.path.join(out, "model.safetensors"), metadata={"format": "pt"})
        with open(os.path.join(out, "generation_config.json"), "w") as f:
            json.dump({"eos_token_id": cfg["text_config"]["eos_token_id"], "do_sample": False}, f)
        with open(os.path.join(out, "chat_template.jinja"), "w") as f:
            f.write(template)
        proc = Qwen2VLImageProcessor(patch_size=16, temporal_patch_size=2, merge_size=2,
                                     size={"shortest_edge": 32 * 32 * 4, "longest_edge": 128 * 128},
                                     image_mean=[0.5, 0.5, 0.5], image_std=[0.5, 0.5, 0.5])
        proc.save_pretrained(out)
        edited, original = images()
        edited.save(os.path.join(out, "edited.png"))
        original.save(os.path.join(out, "original.png"))

        from jinja2 import Template
        msgs = [{"role": "system", "content": SYSTEM},
                {"role": "user", "content": [{"type": "image"}, {"type": "image"}, {"type": "text", "text": USER}]}]
        prompt = fast.apply_chat_template(msgs, chat_template=template, tokenize=False, add_generation_prompt=True)
        pix = proc(images=[edited, original], return_tensors="pt")
        grids = pix["image_grid_thw"]
        counts = (grids.prod(-1) // 4).tolist()
        parts = prompt.split("<|image_pad|>")
        assert len(parts) == 3
        text = parts[0] + "<|image_pad|>" * counts[0] + parts[1] + "<|image_pad|>" * counts[1] + parts[2]
        ids = fast(text, add_special_tokens=False)["input_ids"]
        input_ids = torch.tensor([ids])
        mm = (input_ids == cfg["image_token_id"]).int()
        digit_ids = [tok.token_to_id(str(i)) for i in range(11)]
        assert all(d is not None for d in digit_ids), digit_ids
        ref = {"kind": kind, "system_prompt": SYSTEM, "user_prompt": USER, "prompt": prompt,
               "input_ids": ids, "image_grid_thw": grids.tolist(), "digit_ids": digit_ids,
               "transformers": __import__("transformers").__version__, "torch": torch.__version__}
        for dt_name, dt in (("fp32", torch.float32), ("bf16", torch.bfloat16)):
            m = model.to(dt)
            with torch.no_grad():
                o = m(input_ids=input_ids, attention_mask=torch.ones_like(input_ids),
                      pixel_values=pix["pixel_values"].to(dt), image_grid_thw=grids, mm_token_type_ids=mm)
            row = o.logits[0, -1].float()
            np.save(os.path.join(out, f"logits_{dt_name}.npy"), row.numpy().astype(np.float32))
            d = row[digit_ids].double()
            p = torch.softmax(d, 0)
            ref[dt_name] = {"digit_logits": d.tolist(), "probs": p.tolist(),
                            "score": float((p * torch.arange(11)).sum()), "argmax": int(d.argmax())}
        # the bf16 pass rounded the weights and the rotary buffers: the same
        # model again, from the same seed
        model = build(kind, cfg)
        # other shapes of request, float32 probabilities only: no system
        # prompt; the edited image alone; text with a newline and CJK
        variants = []
        for system, n_img, user in ((None, 2, USER), (SYSTEM, 1, "Score the edit: 天空变紫。"),
                                    (None, 1, "Line one.\n\nLine two, then score.")):
            msgs = ([{"role": "system", "content": system}] if system else []) + [
                {"role": "user", "content": [{"type": "image"}] * n_img + [{"type": "text", "text": user}]}]
            vt = fast.apply_chat_template(msgs, chat_template=template, tokenize=False, add_generation_prompt=True)
            vp = proc(images=[edited, original][:n_img], return_tensors="pt")
            vparts = vt.split("<|image_pad|>")
            vc = (vp["image_grid_thw"].prod(-1) // 4).tolist()
            vt = vparts[0] + "".join("<|image_pad|>" * vc[i] + vparts[i + 1] for i in range(n_img))
            vids = torch.tensor([fast(vt, add_special_tokens=False)["input_ids"]])
            with torch.no_grad():
                vo = model(input_ids=vids, attention_mask=torch.ones_like(vids), pixel_values=vp["pixel_values"],
                           image_grid_thw=vp["image_grid_thw"], mm_token_type_ids=(vids == cfg["image_token_id"]).int())
            vpr = torch.softmax(vo.logits[0, -1][digit_ids].double(), 0)
            variants.append({"system_prompt": system, "images": n_img, "user_prompt": user,
                             "n_ids": vids.shape[1], "probs": vpr.tolist(),
                             "score": float((vpr * torch.arange(11)).sum())})
        # the weights are the saved ones again: the main request reproduces
        with torch.no_grad():
            o = model(input_ids=input_ids, attention_mask=torch.ones_like(input_ids),
                      pixel_values=pix["pixel_values"], image_grid_thw=grids, mm_token_type_ids=mm)
        np.testing.assert_allclose(o.logits[0, -1].numpy(), np.load(os.path.join(out, "logits_fp32.npy")), rtol=0, atol=1e-6)
        ref["variants"] = variants
        with torch.no_grad():
            g = model.generate(input_ids=input_ids, attention_mask=torch.ones_like(input_ids),
                               pixel_values=pix["pixel_values"], image_grid_thw=grids, mm_token_type_ids=mm,
                               max_new_tokens=16, do_sample=False, eos_token_id=cfg["text_config"]["eos_token_id"],
                               pad_token_id=tok.token_to_id("<|endoftext|>"))
        new_ids = g[0, input_ids.shape[1]:].tolist()
        model.generation_config.eos_token_id = None
        with torch.no_grad():   # and without a stop token: all 16 steps through the cache
            g = model.generate(input_ids=input_ids, attention_mask=torch.ones_like(input_ids),
                               pixel_values=pix["pixel_values"], image_grid_thw=grids, mm_token_type_ids=mm,
                               max_new_tokens=16, do_sample=False, pad_token_id=tok.token_to_id("<|endoftext|>"))
        assert g.shape[1] == input_ids.shape[1] + 16
        ref["generate"] = {"max_new_tokens": 16, "ids": new_ids,
                           "text": fast.decode(new_ids, skip_special_tokens=True),
                           "ids_nostop": g[0, input_ids.shape[1]:].tolist()}
        # the files as written load back into transformers to the same logits
        M = type(model)
        again = M.from_pretrained(out, torch_dtype=torch.float32).eval()
        with torch.no_grad():
            o = again(input_ids=input_ids, attention_mask=torch.ones_like(input_ids),
                      pixel_values=pix["pixel_values"], image_grid_thw=grids, mm_token_type_ids=mm)
        np.testing.assert_allclose(o.logits[0, -1].numpy(), np.load(os.path.join(out, "logits_fp32.npy")),
                                   rtol=0, atol=1e-6)
        with open(os.path.join(out, "reference.json"), "w") as f:
            json.dump(ref, f, indent=1, ensure_ascii=False)
        print(kind, "tokens", len(ids), "grids", grids.tolist(), "score fp32", ref["fp32"]["score"],
              "bf16", ref["bf16"]["score"], "argmax", ref["fp32"]["argmax"])


if __name__ == "__main__":
    main()
