"""Writes small fixtures in the published layouts of four edit benchmarks,
for the dataset adapters (lua/evalhost/datasets/) and tools/convert_gedit.py:

  imgedit/basic_edit.json + imgedit/singleturn/<group>/<n>.jpg   (ImgEdit Basic)
  kris/KRIS_Bench/<category>/annotation.json + images            (KRIS-Bench)
  rise/data/data_total.json + rise/data/images/<category>/*.png  (RISEBench)
  gedit/data/train-00000-of-00001.parquet                        (GEdit-Bench on HF)

Each has one bad entry the adapters must report by name (a path leaving the
image folder, a missing instruction, a missing file, an unsafe key).
Run with the venv (Pillow, pyarrow):  .venv/bin/python tests/data/adapters/make_fixtures.py
"""
import io
import json
import os
import random

from PIL import Image, ImageDraw

HERE = os.path.dirname(os.path.abspath(__file__))


def picture(rng, fmt="PNG", w=24, h=18):
    img = Image.new("RGB", (w, h), tuple(rng.randrange(256) for _ in range(3)))
    d = ImageDraw.Draw(img)
    d.rectangle([rng.randrange(w // 2), rng.randrange(h // 2), w - 3, h - 3],
                fill=tuple(rng.randrange(256) for _ in range(3)))
    buf = io.BytesIO()
    img.save(buf, fmt, **({"quality": 90} if fmt == "JPEG" else {}))
    return buf.getvalue()


def put(path, data):
    path = os.path.join(HERE, path)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    mode = "wb" if isinstance(data, bytes) else "w"
    with open(path, mode, **({} if mode == "wb" else {"encoding": "utf-8"})) as f:
        f.write(data)


def imgedit(rng):
    doc = {
        "10": {"id": "animal/000342021.jpg", "prompt": "Change the tortoise's shell to a smooth surface.", "edit_type": "adjust"},
        "2": {"id": "animal/000047206.jpg", "prompt": "Make the fur darker.", "edit_type": "adjust"},
        "7": {"id": "style/000278574.jpg", "prompt": "Turn it into an ukiyo-e print.", "edit_type": "style"},
        "3": {"id": "transport/000001.jpg", "prompt": "Remove the car.", "edit_type": "remove"},
        "4": {"id": "../../outside.jpg", "prompt": "Escape.", "edit_type": "remove"},
    }
    put("imgedit/basic_edit.json", json.dumps(doc, indent=1, ensure_ascii=False))
    for e in doc.values():
        if not e["id"].startswith(".."):
            put(os.path.join("imgedit/singleturn", e["id"]), picture(rng, "JPEG"))


def kris(rng):
    cats = {
        "color_change": {"1": {"ori_img": "1.jpg", "ins_en": "Paint the apple the colour of a ripe banana.",
                               "explain_en": "The apple becomes yellow."},
                         "2": {"ori_img": ["2.jpg", "2_b.jpg"], "ins_en": "Colour the sky at noon.",
                               "explain_en": "A blue sky."}},
        "temperature": {"1": {"ori_img": "1.jpg", "ins_en": "Show the ice after an hour in the sun.",
                              "explain_en": "It melts."},
                        "3": {"ori_img": "3.jpg", "explain_en": "no instruction here"}},
    }
    for cat, ann in cats.items():
        put("kris/KRIS_Bench/%s/annotation.json" % cat, json.dumps(ann, indent=1, ensure_ascii=False))
        for e in ann.values():
            imgs = e["ori_img"] if isinstance(e["ori_img"], list) else [e["ori_img"]]
            for name in imgs:
                put("kris/KRIS_Bench/%s/%s" % (cat, name), picture(rng, "JPEG"))


def rise(rng):
    items = [
        {"index": "temporal_reasoning_1", "category": "temporal_reasoning", "instruction": "Show this apple a month later.",
         "image": "images/temporal_reasoning/1.png", "reference": "A rotten apple."},
        {"index": "causal_reasoning_1", "category": "causal_reasoning", "instruction": "What happens if the glass falls?",
         "image": "images/causal_reasoning/1.png", "reference": "A broken glass."},
        {"index": "logical_reasoning_1", "category": "logical_reasoning", "instruction": "Solve the maze.",
         "image": "images/logical_reasoning/1.png", "reference_txt": "Path drawn."},
        {"index": "spatial_reasoning_1", "category": "spatial_reasoning", "instruction": "Assemble the parts.",
         "image": "images/spatial_reasoning/missing.png"},
    ]
    put("rise/data/data_total.json", json.dumps(items, indent=1))
    for it in items[:3]:
        put("rise/data/" + it["image"], picture(rng))


def gedit(rng):
    import pyarrow as pa
    import pyarrow.parquet as pq

    rows = []
    for key, task, lang, text, inter in [
        ("a1", "background_change", "en", "Change the background to a beach.", True),
        ("a1", "background_change", "cn", "把背景换成海滩。", True),
        ("b2", "color_alter", "en", "Make the car red.", False),
        ("c3", "text_change", "en", "Replace the sign's text with OPEN.", True),
        ("../x", "text_change", "en", "An unsafe key.", False),
    ]:
        rows.append({"key": key, "task_type": task, "instruction": text, "instruction_language": lang,
                     "input_image": {"bytes": picture(rng), "path": key + ".png"}, "Intersection_exist": inter})
    os.makedirs(os.path.join(HERE, "gedit/data"), exist_ok=True)
    pq.write_table(pa.Table.from_pylist(rows), os.path.join(HERE, "gedit/data/train-00000-of-00001.parquet"))


def main():
    rng = random.Random(13)
    imgedit(rng)
    kris(rng)
    rise(rng)
    gedit(rng)


if __name__ == "__main__":
    main()
