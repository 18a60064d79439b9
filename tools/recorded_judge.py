"""A recorded-replies judge: an OpenAI-compatible /v1/chat/completions
server on 127.0.0.1 that answers each request from a file of replies keyed
by the request, so one set of judge replies feeds both a benchmark's
official evaluation code and evalhost (issue 25).

A request's key is what both sides must send alike: the SHA-256 (first 16
hex digits) of its text parts in message order, then the pixel size of each
picture in order ("3f...a1:640x480,640x480"). Image bytes are not part of
the key: the official code encodes with PIL, evalhost with its own
encoder, and the pixels' sizes are what a protocol fixes (resize to the
source, at most 768 px ...).

  replies file: {"format": "evalhost-recorded-replies/1",
                 "replies": {"<key>": "reply text", ...},
                 "prompts": {"<key>": "first 120 characters of the text"}}

Modes:
  replay  (default) a key not in the file is answered 404 with the key in
          the message, so a request that differs from the recorded one fails
          loudly instead of getting someone else's reply;
  record  --policy MODULE:FUNC answers with FUNC(text, sizes) and writes the
          file on exit (a generator's deterministic replies).

Every request is appended to --log as JSON lines {key, sizes, mimes, text,
n_messages, system} for tests to compare the two sides' requests.

  .venv/bin/python tools/recorded_judge.py REPLIES.json [--port 0] [--log L.jsonl]
  with RecordedJudge("replies.json", log="log.jsonl") as j: j.url

Bounded: at most MAX_REQUESTS requests (then 503) and MAX_LIFETIME seconds.
"""
import argparse
import base64
import hashlib
import importlib
import io
import json
import os
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from PIL import Image

from serve_thread import Serving  # tools/, beside this file

MAX_REQUESTS = 20000
MAX_LIFETIME = 1800.0
MAX_BODY = 200 * 1000 * 1000
FORMAT = "evalhost-recorded-replies/1"


def text_parts(messages):
    """Every text part of the messages, in order (a string content is one part)."""
    out = []
    for m in messages:
        c = m.get("content")
        if isinstance(c, str):
            out.append(c)
        elif isinstance(c, list):
            out += [p.get("text", "") for p in c if p.get("type") == "text"]
    return out


def image_parts(messages):
    """(mime, width, height) of each image_url part, in order."""
    out = []
    for m in messages:
        c = m.get("content")
        if not isinstance(c, list):
            continue
        for p in c:
            if p.get("type") != "image_url":
                continue
            url = p["image_url"]["url"] if isinstance(p.get("image_url"), dict) else p.get("image_url")
            head, _, data = url.partition(",")
            img = Image.open(io.BytesIO(base64.b64decode(data)))
            out.append((head[len("data:"):].split(";")[0], img.size[0], img.size[1]))
    return out


def request_key(messages):
    texts = text_parts(messages)
    sizes = ["%dx%d" % (w, h) for _, w, h in image_parts(messages)]
    digest = hashlib.sha256("\n\x00".join(texts).encode("utf-8")).hexdigest()[:16]
    return digest + ":" + ",".join(sizes), texts, sizes


def completion(model, text):
    return {"id": "recorded", "object": "chat.completion", "created": 0, "model": model or "recorded",
            "choices": [{"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}],
            "usage": {"prompt_tokens": 0, "completion_tokens": 0, "total_tokens": 0}}


class _Handler(BaseHTTPRequestHandler):
    def log_message(self, *args):  # quiet
        pass

    def _send(self, status, obj):
        body = json.dumps(obj).encode("utf-8")
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_POST(self):  # noqa: N802
        srv = self.server.owner
        n = int(self.headers.get("Content-Length") or 0)
        if n > MAX_BODY:
            return self._send(413, {"error": {"message": "body too large", "code": "too_large"}})
        body = self.rfile.read(n)
        with srv.lock:
            srv.count += 1
            over = srv.count > MAX_REQUESTS
        if over:
            return self._send(503, {"error": {"message": "request limit", "code": "limit"}})
        if not self.path.rstrip("/").endswith("/chat/completions"):
            return self._send(404, {"error": {"message": "only /v1/chat/completions", "code": "not_found"}})
        req = json.loads(body)
        msgs = req.get("messages") or []
        key, texts, sizes = request_key(msgs)
        entry = {"key": key, "sizes": sizes, "mimes": [m for m, _, _ in image_parts(msgs)],
                 "text": "\n\x00".join(texts), "n_messages": len(msgs),
                 "system": any(m.get("role") == "system" for m in msgs),
                 "text_first": bool(msgs) and isinstance(msgs[-1].get("content"), list)
                 and bool(msgs[-1]["content"]) and msgs[-1]["content"][0].get("type") == "text"}
        with srv.lock:
            reply = srv.replies.get(key)
            if reply is None and srv.policy is not None:
                reply = srv.policy("\n\x00".join(texts), sizes)
                srv.replies[key] = reply
                srv.prompts[key] = "\n".join(texts)[:120]
            entry["found"] = reply is not None
            srv.log.append(entry)
            if srv.log_path:
                with open(srv.log_path, "a", encoding="utf-8") as f:
                    f.write(json.dumps(entry, ensure_ascii=False) + "\n")
        if reply is None:
            return self._send(404, {"error": {"message": "no recorded reply for key %s" % key, "code": "no_reply"}})
        return self._send(200, completion(req.get("model"), reply))


class _Server(ThreadingHTTPServer):
    daemon_threads = True


class RecordedJudge:
    """with RecordedJudge(path) as j: j.url ("http://127.0.0.1:PORT/v1"), j.log."""

    def __init__(self, path, log=None, policy=None, port=0):
        self.path, self.log_path, self.policy, self.port = path, log, policy, port
        self.replies, self.prompts, self.log, self.count = {}, {}, [], 0
        self.lock = threading.Lock()
        if os.path.exists(path):
            with open(path, encoding="utf-8") as f:
                doc = json.load(f)
            if doc.get("format") != FORMAT:
                raise SystemExit("recorded_judge: %s is not %s" % (path, FORMAT))
            self.replies, self.prompts = dict(doc["replies"]), dict(doc.get("prompts", {}))
        elif policy is None:
            raise SystemExit("recorded_judge: %s does not exist (give --policy to record)" % path)

    def __enter__(self):
        self.httpd = _Server(("127.0.0.1", self.port), _Handler)
        self.httpd.owner = self
        self.url = "http://127.0.0.1:%d/v1" % self.httpd.server_address[1]
        self.serving = Serving(self.httpd, MAX_LIFETIME)
        return self

    def __exit__(self, *exc):
        self.serving.stop()
        if self.policy is not None:
            self.save()

    def save(self):
        doc = {"format": FORMAT, "replies": dict(sorted(self.replies.items())),
               "prompts": dict(sorted(self.prompts.items()))}
        tmp = self.path + ".tmp"
        with open(tmp, "w", encoding="utf-8") as f:
            json.dump(doc, f, indent=1, ensure_ascii=False)
            f.write("\n")
        os.replace(tmp, self.path)


def load_policy(spec):
    mod, _, fn = spec.partition(":")
    if os.path.exists(mod):
        sys.path.insert(0, os.path.dirname(os.path.abspath(mod)))
        mod = os.path.splitext(os.path.basename(mod))[0]
    return getattr(importlib.import_module(mod), fn)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("replies", help="the replies file (replay), or where to write it (--policy)")
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--log", help="append every request as a JSON line here")
    ap.add_argument("--policy", help="MODULE:FUNC (or path.py:FUNC) answering unknown keys: record mode")
    a = ap.parse_args()
    policy = load_policy(a.policy) if a.policy else None
    with RecordedJudge(a.replies, log=a.log, policy=policy, port=a.port) as j:
        print(j.url, flush=True)
        try:
            while True:
                time.sleep(1)
        except KeyboardInterrupt:
            pass


if __name__ == "__main__":
    main()
