#!/usr/bin/env python3
"""Writes the safetensors fixtures of tests/unit/test_safetensors.c: good
files made by the `safetensors` package (one file, and a two-shard index)
and hostile ones made by editing a good file's header or bytes.

    make.py [OUT_DIR]      (default: this script's directory)
"""
import json
import os
import struct
import sys

import numpy as np
from safetensors.numpy import save_file


def raw(header, data=b"", hlen=None):
    h = json.dumps(header).encode() if isinstance(header, dict) else header
    n = len(h) if hlen is None else hlen
    return struct.pack("<Q", n) + h + data


def main():
    out = sys.argv[1] if len(sys.argv) > 1 else os.path.dirname(os.path.abspath(__file__))
    os.makedirs(out, exist_ok=True)
    a = np.arange(12, dtype=np.float32).reshape(3, 4) / 8
    b = np.array([1, -2, 3], dtype=np.int64)
    c = (np.arange(6, dtype=np.float32) - 2.5).astype(np.float16).reshape(2, 3)
    save_file({"a": a, "b": b, "c": c}, os.path.join(out, "good.safetensors"), metadata={"format": "pt"})

    shard_dir = os.path.join(out, "sharded")
    os.makedirs(shard_dir, exist_ok=True)
    save_file({"layer.0.w": a, "layer.0.b": b}, os.path.join(shard_dir, "model-00001-of-00002.safetensors"))
    save_file({"layer.1.w": c}, os.path.join(shard_dir, "model-00002-of-00002.safetensors"))
    index = {"metadata": {"total_size": a.nbytes + b.nbytes + c.nbytes},
             "weight_map": {"layer.0.w": "model-00001-of-00002.safetensors",
                            "layer.0.b": "model-00001-of-00002.safetensors",
                            "layer.1.w": "model-00002-of-00002.safetensors"}}
    with open(os.path.join(shard_dir, "model.safetensors.index.json"), "w") as f:
        json.dump(index, f)

    # hostile indexes beside the good shards
    bad = dict(index, weight_map=dict(index["weight_map"], **{"layer.1.w": "../good.safetensors"}))
    with open(os.path.join(shard_dir, "escape.index.json"), "w") as f:
        json.dump(bad, f)
    bad = dict(index, weight_map=dict(index["weight_map"], **{"layer.9.w": "model-00002-of-00002.safetensors"}))
    with open(os.path.join(shard_dir, "missing.index.json"), "w") as f:
        json.dump(bad, f)
    bad = dict(index, weight_map={k: v for k, v in index["weight_map"].items() if k != "layer.0.b"})
    with open(os.path.join(shard_dir, "unlisted.index.json"), "w") as f:
        json.dump(bad, f)
    bad = dict(index, weight_map=dict(index["weight_map"], **{"layer.0.b": "model-00002-of-00002.safetensors"}))
    with open(os.path.join(shard_dir, "wrongshard.index.json"), "w") as f:
        json.dump(bad, f)

    good = open(os.path.join(out, "good.safetensors"), "rb").read()
    hlen = struct.unpack("<Q", good[:8])[0]
    header = json.loads(good[8:8 + hlen])
    data = good[8 + hlen:]
    hostile = {
        "truncated.safetensors": good[:-5],
        "tiny.safetensors": good[:4],
        "hugelen.safetensors": struct.pack("<Q", 1 << 40) + good[8:],
        "pastend.safetensors": struct.pack("<Q", len(good)) + good[8:],
        "notjson.safetensors": raw(b"{not json at all" + b" " * 20, data),
        "baddtype.safetensors": raw(dict(header, a=dict(header["a"], dtype="F13")), data),
        "badshape.safetensors": raw(dict(header, a=dict(header["a"], shape=[3, 5])), data),
        "negshape.safetensors": raw(dict(header, a=dict(header["a"], shape=[-3, -4])), data),
        "overlap.safetensors": raw(dict(header, c=dict(header["c"], data_offsets=[
            header["a"]["data_offsets"][0], header["a"]["data_offsets"][0] + 12])), data),
        "badoffsets.safetensors": raw(dict(header, b=dict(header["b"], data_offsets=[24, 0])), data),
        "notobject.safetensors": raw(b"[1, 2, 3]", data),
    }
    for name, blob in hostile.items():
        with open(os.path.join(out, name), "wb") as f:
            f.write(blob)


if __name__ == "__main__":
    main()
