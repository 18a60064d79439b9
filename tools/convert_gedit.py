"""Converts GEdit-Bench as published on Hugging Face (stepfun-ai/GEdit-Bench:
parquet files with columns key, task_type, instruction, instruction_language,
input_image {bytes, path}, Intersection_exist -- capital I, as published and as
the official test_gedit_score.py reads it) into what evalhost reads:

  OUT/gedit.jsonl   one pair a line: {"id", "category", "edit_instruction",
                    "image_path", "language", "intersection_exist"}
  OUT/images/<task_type>/<key>_<language>.<ext>   the input images, bytes as published

Run once with the venv (needs pyarrow):
  .venv/bin/python tools/convert_gedit.py SNAPSHOT_DIR OUT_DIR
then run evalhost with  dataset: {path: OUT_DIR/gedit.jsonl, adapter: gedit, language: en}.

SNAPSHOT_DIR is the dataset's folder (every *.parquet below it is read, in
sorted order). A row whose key or task type cannot be a file name, or whose
image is missing, is reported and skipped; the exit status is 1 when any was.
"""
import argparse
import json
import os
import re
import sys

SAFE = re.compile(r"^[^/\\\x00]+$")
MAGIC = [(b"\x89PNG\r\n\x1a\n", "png"), (b"\xff\xd8\xff", "jpg"), (b"RIFF", "webp"), (b"GIF8", "gif")]
COLUMNS = ("key", "task_type", "instruction", "instruction_language", "input_image")


def ext_of(data):
    for magic, ext in MAGIC:
        if data.startswith(magic):
            return ext
    return None


def safe(name):
    return isinstance(name, str) and bool(SAFE.match(name)) and not name.startswith(".")


def intersection(row):
    """The published column is Intersection_exist; a lower-case one (an
    older export) is read too. Neither: False, and the subset is empty."""
    v = row.get("Intersection_exist", row.get("intersection_exist"))
    return bool(v)


def parquet_files(src):
    out = []
    for root, _, files in os.walk(src):
        out += [os.path.join(root, f) for f in files if f.endswith(".parquet")]
    return sorted(out)


def convert(src, out):
    import pyarrow.parquet as pq

    files = parquet_files(src)
    if not files:
        raise SystemExit("convert_gedit: no *.parquet under %s (the GEdit-Bench dataset folder)" % src)
    os.makedirs(out, exist_ok=True)
    problems, n = [], 0
    lines = []
    for path in files:
        table = pq.read_table(path)
        missing = [c for c in COLUMNS if c not in table.column_names]
        if missing:
            raise SystemExit("convert_gedit: %s lacks column(s) %s (has %s)" % (path, ", ".join(missing),
                                                                                ", ".join(table.column_names)))
        for i, row in enumerate(table.to_pylist()):
            where = "%s row %d" % (os.path.basename(path), i)
            key, task, lang = row["key"], row["task_type"], row["instruction_language"]
            if not (safe(key) and safe(task) and safe(lang)):
                problems.append("%s: key %r / task_type %r / language %r cannot name a file" % (where, key, task, lang))
                continue
            img = row["input_image"]
            data = img.get("bytes") if isinstance(img, dict) else img
            if not data:
                problems.append("%s (%s): no image bytes" % (where, key))
                continue
            ext = ext_of(data)
            if ext is None:
                problems.append("%s (%s): image bytes are not PNG, JPEG, WebP or GIF" % (where, key))
                continue
            rel = "images/%s/%s_%s.%s" % (task, key, lang, ext)
            os.makedirs(os.path.join(out, "images", task), exist_ok=True)
            with open(os.path.join(out, rel), "wb") as f:
                f.write(data)
            lines.append(json.dumps({"id": "%s_%s" % (key, lang), "key": key, "category": task,
                                     "edit_instruction": row["instruction"], "image_path": rel, "language": lang,
                                     "intersection_exist": intersection(row)},
                                    ensure_ascii=False))
            n += 1
    tmp = os.path.join(out, "gedit.jsonl.tmp")
    with open(tmp, "w", encoding="utf-8") as f:
        f.write("\n".join(lines) + ("\n" if lines else ""))
    os.replace(tmp, os.path.join(out, "gedit.jsonl"))
    for p in problems:
        print("convert_gedit: skipped %s" % p, file=sys.stderr)
    print("convert_gedit: %d pair(s) from %d file(s) -> %s" % (n, len(files), os.path.join(out, "gedit.jsonl")))
    return 1 if problems else 0


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("src", help="GEdit-Bench dataset folder (with its parquet files)")
    ap.add_argument("out", help="output folder for gedit.jsonl and images/")
    a = ap.parse_args()
    sys.exit(convert(a.src, a.out))


if __name__ == "__main__":
    main()
