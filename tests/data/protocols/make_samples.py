"""Writes small samples in the official layouts of the benchmarks whose
judging protocol evalhost reproduces (issue 25), for
tests/e2e/test_protocols.py and tools/protocols/run_official.py:

  gedit/data/train-00000-of-00001.parquet   GEdit-Bench as published on the
      Hub (key, task_type, instruction, instruction_language, input_image,
      Intersection_exist): 2 keys x 2 languages per each of the 11 task types.
  imgedit/basic_edit.json, singleturn/, prompts.json   ImgEdit Basic: 3 items
      per each of the 9 edit types, and a stand-in rubric file.
  rise/data/data_total.json, <category>_images/   RISEBench in the layout its
      gpt_eval.py reads (the Hub's full set: index, category, subtask,
      instruction, image, reference / reference_img / reference_txt,
      reasoning_img, consistency_free): 4 items per each of the 4 categories,
      one per prompt branch of eval_vanilla, one picture over 768 px.
  kris/KRIS_Bench/<category>/annotation.json + pictures, kris/utils/prompts.py
      KRIS-Bench: 2 items in each of 7 categories covering its five scripts
      (common, knowledge, viewpoint, temporal frames, multi-element
      sources), and stand-in prompts in utils/prompts.py's layout.

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


RISE_SUBTASKS = {
    "temporal_reasoning": ["Life Progression", "Material Progression", "Environmental Cycles", "Societal Transformation"],
    "causal_reasoning": ["Structural Deformation", "State Transition", "Chemical and Biological Transformation",
                         "Physics Manifestation"],
    "spatial_reasoning": ["Component Assembly", "Object Arrangement", "Viewpoint Generation", "Layout Reasoning"],
    "logical_reasoning": ["Pattern Prediction", "Mathematical Derivation", "Puzzle Solving", "Puzzle Solving"],
}


RISE_PROMPTS = ["prompt_consist", "prompt_reasoning", "prompt_reasoning_w_input", "prompt_generation",
                "prompt_spatial_ref", "prompt_spatial_ref_img", "prompt_spatial_ref_w_input", "prompt_spatial_qual",
                "prompt_spatial_cons", "prompt_logical_cons_ans", "prompt_logical_cons", "prompt_logical_txt",
                "prompt_logical_img", "prompt_logical_img_wo_q"]
# the fields eval_vanilla formats each with (the others are sent as they are)
RISE_PROMPT_FIELDS = {"prompt_consist": ["instruct"], "prompt_reasoning": ["instruct", "reference"],
                      "prompt_reasoning_w_input": ["instruct", "reference"], "prompt_spatial_ref": ["instruct", "reference"],
                      "prompt_spatial_ref_img": ["instruct"], "prompt_spatial_ref_w_input": ["instruct", "reference"],
                      "prompt_spatial_cons": ["instruct"], "prompt_logical_cons_ans": ["instruct", "reference"],
                      "prompt_logical_cons": ["instruct"], "prompt_logical_txt": ["reference"],
                      "prompt_logical_img": ["instruct"]}


def rise(rng):
    """Item k of each category takes one of eval_vanilla's branches:
    temporal/causal: plain, reasoning_img (the input goes with the
    reasoning prompt), consistency_free (no consistency call), plain with
    "consistency_free": null (pandas: None, not NaN); spatial: reference_img
    (it replaces the input), reasoning_img, plain, consistency_free;
    logical: reference_txt twice, reference_img twice. Every other item
    lacks the consistency_free key, which gpt_eval.py's calculate_score
    reads as NaN (true) -- the sample keeps that quirk in view. One
    picture is 900x600 (sent as PIL's 768x512 thumbnail); width > height
    everywhere, so a rotated edit's size is nobody's input size."""
    import json

    root = os.path.join(HERE, "rise", "data")
    items, n = [], 0
    for cat, subs in RISE_SUBTASKS.items():
        for k in range(4):
            n += 1
            ext = "jpg" if n % 3 == 0 else "png"
            rel = "%s_images/%d.%s" % (cat, k + 1, ext)
            w, h = (900, 600) if n == 6 else (60 + 3 * n, 30 + 2 * n)
            rotate = ", then rotate it" if n % 5 == 0 else ""
            it = {"index": "%s_%d" % (cat, k + 1), "category": cat, "subtask": subs[k],
                  "instruction": "Show %s item %d after the change%s." % (cat.split("_")[0], k + 1, rotate),
                  "image": rel}
            path = os.path.join(root, rel)
            os.makedirs(os.path.dirname(path), exist_ok=True)
            with open(path, "wb") as f:
                f.write(picture(rng, w, h, "JPEG" if ext == "jpg" else "PNG"))
            if cat == "logical_reasoning":
                if k < 2:
                    it["reference_txt"] = "The answer {%d} drawn in red." % k
                else:
                    ref = "%s_images/%d_ref.png" % (cat, k + 1)
                    with open(os.path.join(root, ref), "wb") as f:
                        f.write(picture(rng, 200 + 3 * n, 100 + n))
                    it["reference_img"] = ref
            else:
                it["reference"] = "The %s after the change, number %d." % (cat, k + 1)
                if cat == "spatial_reasoning" and k == 0:
                    ref = "%s_images/%d_ref.png" % (cat, k + 1)
                    with open(os.path.join(root, ref), "wb") as f:
                        f.write(picture(rng, 300 + n, 150 + n))
                    it["reference_img"] = ref
                if k == 1:
                    it["reasoning_img"] = True
                elif k == 0:
                    it["reasoning_img"] = None
                if (cat != "spatial_reasoning" and k == 2) or (cat == "spatial_reasoning" and k == 3):
                    it["consistency_free"] = True
                if cat != "spatial_reasoning" and k == 3:
                    it["consistency_free"] = None
            items.append(it)
    with open(os.path.join(root, "data_total.json"), "w", encoding="utf-8") as f:
        json.dump(items, f, indent=4, ensure_ascii=False)
    # stand-in prompts under utils.py's names (the repository has no license): the tests that run without a
    # RISEBench checkout point dataset.official at this file, run_official.py --prompts puts them in gpt_eval
    with open(os.path.join(HERE, "rise", "stand_in_prompts.py"), "w", encoding="utf-8") as f:
        f.write("# Stand-in prompts under RISEBench utils.py's names (not its text: no license).\n")
        for name in RISE_PROMPTS:
            binary = name.startswith("prompt_logical")
            fields = "".join(" {%s}" % x for x in RISE_PROMPT_FIELDS.get(name, ()))
            f.write('\n%s = """RISE stand-in evaluator: %s.%s\nScale: %s.\nEnd with **Final Score:** **X**\n"""\n'
                    % (name, name, fields, "binary score (0 or 1)" if binary else "1 to 5"))


KRIS_CATEGORIES = ["count_change", "anomaly_correction", "chemistry", "mathematics", "viewpoint_change",
                   "temporal_prediction", "multi-element_composition"]

KRIS_PROMPTS = {
    "prompt_consist": "[consistency] KRIS stand-in: rate visual consistency 1-5.\nEditing Instruction: {instruct}\n"
                      "Answer in JSON:\n{{\n\"reasoning\": ...,\n\"consistency_score\": X\n}}\n",
    "prompt_quality": "[quality] KRIS stand-in: rate perceptual quality 1-5.\n{{\n\"reasoning\": XXX,\n"
                      "\"quality_score\": X,\n}}\n",
    "prompt_instruction_following": "[instruction] KRIS stand-in: rate instruction following 1-5.\n"
                                    "Editing Instruction: {instruct}\n{{\n\"instruction_score\": X\n}}\n",
    "prompt_abnormal_instruction_following": "[instruction] KRIS stand-in, abnormal: {instruct} / {explanation}\n",
    "prompt_dual_evaluation": "[dual] KRIS stand-in: rate instruction and knowledge 1-5.\n"
                              "Editing Instruction: {instruct}\nReal-World Knowledge Explanation: {explanation}\n"
                              "{{\n  \"instruction_score\": X,\n  \"knowledge_score\": X\n}}\n",
    "prompt_view_instruction_following": "[instruction] KRIS stand-in, viewpoint with ground truth: {instruct}\n",
    "prompt_consist_temporal": "[consistency] KRIS stand-in, frame {N} in context: {instruct}\n",
    "prompt_instruction_temporal": "[instruction] KRIS stand-in, frame {N} follows: {instruct}\n",
    "prompt_consist_multi": "[consistency] KRIS stand-in, composite vs its sources: {instruct}\n",
    "prompt_instruction_multi": "[instruction] KRIS stand-in, composite follows: {instruct}\n",
}


def kris(rng):
    """annotation.json per category as the Hub has it (ori_img: a name, or
    a list for temporal frames "<n>-<k>.jpg" and multi-element sources;
    gt_img for viewpoint_change, which the scripts never send) with ins_en /
    explain_en, plus instruction / explain (same text), the keys the scripts
    read at the revisions matched: both sides then send the same prompts.
    Pictures: width > height, every size its own. utils/prompts.py: stand-in
    prompts (the repository has no license) with the scripts' fields."""
    import json

    root = os.path.join(HERE, "kris", "KRIS_Bench")
    n = 0

    def pic(cat, name, ext="jpg"):
        nonlocal n
        n += 1
        path = os.path.join(root, cat, name)
        with open(path, "wb") as f:
            f.write(picture(rng, 70 + 3 * n, 40 + 2 * n, "JPEG" if ext == "jpg" else "PNG"))
        return name

    for cat in KRIS_CATEGORIES:
        os.makedirs(os.path.join(root, cat), exist_ok=True)
        doc = {}
        for k in (1, 2):
            ins = "Change %s number %d%s." % (cat, k, " and rotate it" if k == 2 and cat == "chemistry" else "")
            expl = "The %s result %d, as knowledge says." % (cat, k) if cat in ("chemistry", "mathematics") else ""
            if cat == "temporal_prediction":
                missing = 1 + (k * 2) % 4
                ori = [pic(cat, "%d-%d.jpg" % (k, f)) for f in range(1, 5) if f != missing]
                e = {"ori_img": ori, "gt_img": pic(cat, "%d-%d.jpg" % (k, missing))}
            elif cat == "multi-element_composition":
                e = {"ori_img": [pic(cat, "%d_%d.png" % (k, j), "png") for j in range(1, 4)]}
            else:
                e = {"ori_img": pic(cat, "%d.%s" % (k, "png" if k == 2 else "jpg"), "png" if k == 2 else "jpg")}
                if cat == "viewpoint_change":
                    e["gt_img"] = pic(cat, "%d_gt.jpg" % k)
            e.update({"ins_en": ins, "explain_en": expl, "instruction": ins, "explain": expl})
            doc[str(k)] = e
        with open(os.path.join(root, cat, "annotation.json"), "w", encoding="utf-8") as f:
            json.dump(doc, f, indent=2, ensure_ascii=False)
    os.makedirs(os.path.join(HERE, "kris", "utils"), exist_ok=True)
    with open(os.path.join(HERE, "kris", "utils", "prompts.py"), "w", encoding="utf-8") as f:
        f.write("# Stand-in prompts in Kris_Bench's utils/prompts.py layout (not its text: no license).\n")
        for name, text in KRIS_PROMPTS.items():
            f.write('\n%s = """\n%s"""\n' % (name, text.replace("\\", "\\\\").replace('"""', '\\"""')))


def main():
    rng = random.Random(25)
    gedit(rng)
    imgedit(rng)
    rise(random.Random(26))   # its own stream: the other samples stay as committed
    kris(random.Random(27))


if __name__ == "__main__":
    main()
