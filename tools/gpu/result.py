"""tools/gpu/result.py — the one JSON file of tools/gpu/check.sh, rewritten
(temp + rename) after every step so that a run cut off at its time limit
still returns what it measured.

  result.py FILE init KEY=VALUE...              start the file (dry_run=1, ...)
  result.py FILE set SECTION JSON_FILE          put a JSON file's object under SECTION
  result.py FILE step NAME STATUS SECONDS NOTE [JSON_FILE]
                                                append a step (ok, failed, skipped, timeout)
  result.py FILE summary                        print one line per step
"""
import json
import os
import sys
import time


def load(path):
    try:
        with open(path, encoding="utf-8") as f:
            return json.load(f)
    except (OSError, ValueError):
        return {"steps": []}


def save(path, doc):
    tmp = path + ".tmp"
    with open(tmp, "w", encoding="utf-8") as f:
        json.dump(doc, f, indent=1, ensure_ascii=False)
        f.write("\n")
    os.replace(tmp, path)


def read_json(path):
    """A step's own JSON; a missing or broken one is recorded as such, not fatal."""
    try:
        with open(path, encoding="utf-8") as f:
            return json.load(f)
    except OSError:
        return None
    except ValueError as e:
        return {"unreadable": f"{path}: {e}"}


def main(argv):
    path, cmd, args = argv[1], argv[2], argv[3:]
    doc = load(path)
    if cmd == "init":
        doc = {"started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "steps": []}
        for kv in args:
            k, _, v = kv.partition("=")
            doc[k] = v
    elif cmd == "set":
        doc[args[0]] = read_json(args[1])
    elif cmd == "step":
        name, status, seconds, note = args[:4]
        step = {"name": name, "status": status, "seconds": round(float(seconds), 1), "note": note}
        if len(args) > 4 and args[4]:
            got = read_json(args[4])
            if got is not None:
                step["result"] = got
        doc["steps"] = [s for s in doc.get("steps", []) if s["name"] != name] + [step]
    elif cmd == "summary":
        for s in doc.get("steps", []):
            print(f"  {s['name']:<14}{s['status']:<9}{s['seconds']:>7.1f} s  {s['note']}")
        return 0
    else:
        sys.exit(f"result.py: unknown command {cmd!r}")
    doc["updated"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    save(path, doc)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
