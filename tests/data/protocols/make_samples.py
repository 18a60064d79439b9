"""Writes small samples in the official layouts of the benchmarks whose
judging protocol evalhost reproduces (issue 25), for
tests/e2e/test_protocols.py and tools/protocols/run_official.py:

  gedit/data/train-00000-of-00001.parquet   GEdit-Bench as published on the
      Hub (key, task_type, instruction, instruction_language, input_image,
      Intersection_exist): 2 keys x 2 languages per each of the 11 task types.
  imgedit/basic_edit.json, singleturn/, prompts.json   ImgEdit Basic: 3 items
      per each of the 9 edit types, and a stand-in rubric file.

Every source picture has its own pixel size, so the recorded judge's keys
(text + picture sizes) tell every request apart; some instructions rotate
(the builtin editor then returns a picture of another size, which the
protocol resizes back to the source's).
Run with the venv:  .venv/bin/python tests/data/protocols/make_samples.py
"""
import io
import os
import random

from PIL import Image, ImageDraw

HERE = os.path.dirname(os.path.abspath(__file__))

GEDIT_GROUPS = ["background_change", "color_alter", "material_alter", "motion_change", "ps_human", "style_change",
                "subject-add", "subject-remove", "subject-replace", "text_change", "tone_transfer"]


def picture(rng, w, h, fmt="PNG"):
    img = Image.new("RGB", (w, h), tuple(rng.randrange(256) for _ in range(3)))
    d = ImageDraw.Draw(img)
    d.rectangle([rng.randrange(w // 2), rng.randrange(h // 2), w - 3, h - 3],
                fill=tuple(rng.randrange(256) for _ in range(3)))
    buf = io.BytesIO()
    img.save(buf, fmt)
    return buf.getvalue()


def gedit(rng):
    import pyarrow as pa
    import pyarrow.parquet as pq

    rows, n = [], 0
    for g, group in enumerate(GEDIT_GROUPS):
        for k in range(2):
            key = "g%02d_%d" % (g, k)
            inter = k == 0 or g % 3 == 0
            for lang in ("en", "cn"):
                n += 1
                w, h = 40 + n, 30 + (n * 7) % 23
                verb = "Rotate the picture, then " if (g + k) % 4 == 0 else ""
                text = ("%sedit for %s number %d (make it bright)." % (verb, group, k) if lang == "en"
                        else "%s第%d项：%s（提亮）" % ("旋转图片，" if verb else "", k, group))
                rows.append({"key": key, "task_type": group, "instruction": text, "instruction_language": lang,
                             "input_image": {"bytes": picture(rng, w, h), "path": key + ".png"},
                             "Intersection_exist": inter})
    os.makedirs(os.path.join(HERE, "gedit/data"), exist_ok=True)
    pq.write_table(pa.Table.from_pylist(rows), os.path.join(HERE, "gedit/data/train-00000-of-00001.parquet"))


IMGEDIT_TYPES = ["add", "remove", "replace", "adjust", "style", "action", "extract", "background", "compose"]


def imgedit(rng):
    """basic_edit.json + singleturn/<group>/<n>.jpg as Benchmark/Basic has
    them, and a stand-in prompts.json in its layout (edit type -> rubric
    with <edit_prompt>): the repository has no license, so its rubrics are
    not copied; the official code reads whichever prompts.json it is given."""
    import json

    doc, n = {}, 0
    for t, etype in enumerate(IMGEDIT_TYPES):
        for k in range(3):
            n += 1
            key = str(100 + n * 7)
            rel = "%s/%06d.jpg" % (["animal", "style", "architecture"][k], n)
            doc[key] = {"id": rel, "prompt": "%s edit number %d%s" % (etype, k, ", rotate it" if n % 5 == 0 else ""),
                        "edit_type": etype}
            path = os.path.join(HERE, "imgedit", "singleturn", rel)
            os.makedirs(os.path.dirname(path), exist_ok=True)
            with open(path, "wb") as f:
                f.write(picture(rng, 50 + n, 40 + (n * 5) % 17, "JPEG"))
    with open(os.path.join(HERE, "imgedit", "basic_edit.json"), "w", encoding="utf-8") as f:
        json.dump(doc, f, indent=4)
    prompts = {t: ("\nImgEdit stand-in rubric for %s edits. Rate the edit from 1 to 5 on three criteria.\n"
                   "Example Response Format:\nBrief reasoning: ...\nPrompt Compliance: N\nVisual Naturalness: N\n"
                   "Physical & Detail Integrity: N\nediting instruction is : <edit_prompt>.\n\n"
                   "Below are the images before and after editing:\n" % t) for t in IMGEDIT_TYPES}
    with open(os.path.join(HERE, "imgedit", "prompts.json"), "w", encoding="utf-8") as f:
        json.dump(prompts, f, indent=2)


def main():
    rng = random.Random(25)
    gedit(rng)
    imgedit(rng)


if __name__ == "__main__":
    main()
