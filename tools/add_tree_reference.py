#!/usr/bin/env python3
"""Adds the score tree's reference (issue 19) to the native fixtures'
reference.json (tests/data/qwen3vl/<kind>/): transformers' P(s) =
P(spelling) P(no digit-starting token | spelling) over 0..10, renormalised,
from explicit forward passes over every score's path
(tools/make_rigged_judge.py's reference()), for float32 and bfloat16 and
each request variant.  The weights and the other fields are left as they
are.

    add_tree_reference.py [FIXTURE_DIR]   (default tests/data/qwen3vl)
"""
import json
import os
import sys

import torch
from PIL import Image

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import make_rigged_judge as mrj  # noqa: E402


def main():
    root = sys.argv[1] if len(sys.argv) > 1 else os.path.join(os.path.dirname(HERE), "tests", "data", "qwen3vl")
    for kind in ("dense", "moe"):
        d = os.path.join(root, kind)
        if kind == "dense":
            from transformers import Qwen3VLForConditionalGeneration as M
        else:
            from transformers import Qwen3VLMoeForConditionalGeneration as M
        with open(os.path.join(d, "reference.json")) as f:
            ref = json.load(f)
        with open(os.path.join(d, "config.json")) as f:
            cfg = json.load(f)
        fast = mrj.fast_tokenizer(os.path.join(d, "tokenizer.json"))
        imgs = [Image.open(os.path.join(d, "edited.png")).convert("RGB"),
                Image.open(os.path.join(d, "original.png")).convert("RGB")]
        for name, dt in (("fp32", torch.float32), ("bf16", torch.bfloat16)):
            model = M.from_pretrained(d, torch_dtype=dt).eval()
            r = mrj.reference(model, fast, cfg, imgs, 0, 10, ref["system_prompt"], ref["user_prompt"])
            assert r["prompt_ids"] == ref["input_ids"], "the prompt is not the fixture's"
            ref[name]["tree"] = {"probs": r["probs"], "score": r["score"], "argmax": r["argmax"]}
            print(kind, name, "tree score", r["score"], "digit-only score", ref[name]["score"])
            if name == "fp32":
                for v in ref["variants"]:
                    vr = mrj.reference(model, fast, cfg, imgs[:v["images"]], 0, 10, v["system_prompt"],
                                       v["user_prompt"])
                    v["tree"] = {"probs": vr["probs"], "score": vr["score"], "argmax": vr["argmax"]}
        with open(os.path.join(d, "reference.json"), "w") as f:
            json.dump(ref, f, indent=1, ensure_ascii=False)


if __name__ == "__main__":
    main()
