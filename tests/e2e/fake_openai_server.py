"""A scripted OpenAI-compatible server on 127.0.0.1 for the http backend's
tests: /v1/chat/completions (judge), /v1/images/edits (editor), vLLM's
/sleep and /wake_up, and /files/<n>.png for editor replies given by URL.

The scenario is the request's model name; the score for a request comes
from the pair id written into the user prompt ("id=pair_007" -> 7*3 % 11),
so a test knows every expected score without talking to the server.

  with FakeOpenAI() as srv:          # free port, own thread, bounded
      srv.url                        # "http://127.0.0.1:PORT"
      srv.log                        # [{path, model, id, t, status, ...}]
      srv.down = True                # every connection is reset

Bounded: at most MAX_REQUESTS requests (then 503), no reply takes longer
than MAX_SLEEP seconds, and the server stops itself after MAX_LIFETIME.
"""
import base64
import hashlib
import io
import json
import math
import os
import re
import socket
import ssl
import struct
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from PIL import Image, ImageOps

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "tools"))
from serve_thread import Serving  # noqa: E402

MAX_REQUESTS = 3000
MAX_SLEEP = 5.0
MAX_LIFETIME = 300.0
BIG_BODY = 50 * 1000 * 1000


def expected_score(pair_id):
    """The score the server gives pair_NNN: (NNN * 3) % 11, so 0..10 all occur."""
    return int(re.search(r"(\d+)", pair_id).group(1)) * 3 % 11


def expected_logprob_score(s):
    """Expectation the 'logprobs' scenario's distribution gives for text score s.
    10 is "1" then "0" (logprob -0.01): combined along the path, P(10) =
    P("1") P("0" | "1") and P(1) = P("1") P(no digit | "1") (issue 19)."""
    alt = s + 1 if s < 10 else s - 1
    if s == 10:
        p0 = math.exp(-0.01)
        return (0.6 * p0 * 10 + 0.6 * (1 - p0) * 1 + 0.3 * alt) / 0.9
    return (0.6 * s + 0.3 * alt) / 0.9


TEXT_FORMS = ["Score: {s}", "{s}/10", '{{"score": {s}}}', "**{s}**", "评分：{s}分", "{s}",
              "The edit follows the instruction; the rest is kept.\nRating: {s}/10"]


def tokens_of(text):
    """A toy tokenizer that splits digits like Qwen's: concatenation == text."""
    return re.findall(r"[0-9]|\s+|[A-Za-z]+|[^\sA-Za-z0-9]", text)


def chat_completion(model, text, with_logprobs, score=None, finish="stop"):
    choice = {"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": finish}
    if with_logprobs:
        content, seen_score = [], False
        toks = tokens_of(text)
        for i, tok in enumerate(toks):
            entry = {"token": tok, "logprob": -0.01, "bytes": list(tok.encode()),
                     "top_logprobs": [{"token": tok, "logprob": -0.01}]}
            if tok.isdigit() and not seen_score and score is not None:
                seen_score = True
                alt = score + 1 if score < 10 else score - 1
                # "10" is two tokens "1" "0": the alternatives sit at the "1".
                entry["top_logprobs"] = [
                    {"token": tok, "logprob": math.log(0.6)},
                    {"token": str(alt) if score < 10 else "9", "logprob": math.log(0.3)},
                    {"token": "Score", "logprob": math.log(0.1)},
                ]
            content.append(entry)
        choice["logprobs"] = {"content": content}
    return {"id": "chatcmpl-fake", "object": "chat.completion", "created": 0, "model": model,
            "choices": [choice], "usage": {"prompt_tokens": 10, "completion_tokens": 5, "total_tokens": 15}}


def parse_multipart(body, content_type):
    m = re.search(r'boundary="?([^";]+)"?', content_type)
    if not m:
        return {}
    boundary = b"--" + m.group(1).encode()
    fields = {}
    for part in body.split(boundary)[1:]:
        if part.startswith(b"--"):
            break
        head, _, data = part.partition(b"\r\n\r\n")
        name = re.search(rb'name="([^"]*)"', head)
        if name:
            key, value = name.group(1).decode(), data[:-2] if data.endswith(b"\r\n") else data
            if key.endswith("[]"):   # an array: every part, in order
                fields.setdefault(key, []).append(value)
            else:
                fields[key] = value
    return fields


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):  # quiet
        pass

    def setup(self):
        self.tls_failed = False
        self.request.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        if isinstance(self.request, ssl.SSLSocket):
            self.request.settimeout(10)
            try:
                self.request.do_handshake()
            except (ssl.SSLError, OSError):
                self.tls_failed = True   # the client refused our certificate
        super().setup()

    def handle(self):
        if not self.tls_failed:
            super().handle()

    # -- helpers ---------------------------------------------------------
    def _send(self, status, body, ctype="application/json", headers=None):
        if isinstance(body, (dict, list)):
            body = json.dumps(body, ensure_ascii=False).encode()
        elif isinstance(body, str):
            body = body.encode()
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        # headers and body in one write: two small writes meet Nagle and delayed ACK (+40 ms)
        self._headers_buffer.append(b"\r\n" + body)
        self.flush_headers()
        self.entry["status"] = status

    def _reset(self):
        """Close with RST: the client sees 'connection reset by peer'."""
        self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        self.close_connection = True
        self.entry["status"] = "reset"

    def _sleep(self, s):
        time.sleep(min(s, MAX_SLEEP))

    # -- dispatch --------------------------------------------------------
    def do_GET(self):
        self._handle("GET")

    def do_POST(self):
        self._handle("POST")

    def _handle(self, method):
        srv = self.server.owner
        n = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(n) if n else b""
        self.entry = {"path": self.path, "method": method, "t": time.monotonic(),
                      "auth": self.headers.get("Authorization")}
        with srv.lock:
            srv.log.append(self.entry)
            srv.in_flight += 1
            srv.max_in_flight = max(srv.max_in_flight, srv.in_flight)
            over = len(srv.log) > MAX_REQUESTS
        try:
            if over:
                return self._send(503, {"error": "fake server request budget spent"})
            if srv.down:
                return self._reset()
            if srv.api_key and self.headers.get("Authorization") != "Bearer " + srv.api_key:
                return self._send(401, {"error": {"message": "Incorrect API key provided"}})
            path = self.path.split("?")[0]
            if path == "/v1/chat/completions":
                return self._chat(srv, body)
            if path == "/v1/images/edits":
                return self._edit(srv, body)
            if path in ("/sleep", "/wake_up"):   # vLLM (--enable-sleep-mode, VLLM_SERVER_DEV_MODE=1)
                return self._send(200, "", "text/plain")
            if path in ("/release_memory_occupation", "/resume_memory_occupation"):   # SGLang
                if not isinstance(json.loads(body or b"null"), dict):
                    return self._send(422, {"detail": "body must be a JSON object"})
                return self._send(200, {"success": True})
            if path.startswith("/files/"):
                data = srv.files.get(path)
                return self._send(200, data, "image/png") if data else self._send(404, "no such file", "text/plain")
            return self._send(404, {"error": "no route " + path})
        finally:
            with srv.lock:
                srv.in_flight -= 1

    # -- judge -----------------------------------------------------------
    def _chat(self, srv, body):
        try:
            req = json.loads(body)
        except ValueError:
            return self._send(400, {"error": "bad json"})
        self.entry["request"] = req
        model = self.entry["model"] = req.get("model", "")
        user = ""
        for msg in req.get("messages", []):
            if msg.get("role") == "user":
                parts = msg["content"] if isinstance(msg["content"], list) else [{"type": "text", "text": msg["content"]}]
                user = "".join(p.get("text", "") for p in parts if p.get("type") == "text")
        m = re.search(r"id=(\S+)", user)
        pid = self.entry["id"] = m.group(1) if m else "pair_001"
        num = int(re.search(r"(\d+)", pid).group(1))
        s = expected_score(pid)
        key = hashlib.sha256(body).hexdigest()
        with srv.lock:
            srv.seen[key] = attempt = srv.seen.get(key, 0) + 1
        self.entry["attempt"] = attempt
        text = TEXT_FORMS[num % len(TEXT_FORMS)].format(s=s)
        lp = bool(req.get("logprobs"))
        if srv.latency:   # spread shuffles the completion order
            self._sleep(srv.latency * ((0.5 + (num * 7919 % 100) / 100.0) if srv.spread else 1.0))

        if model == "logprobs":
            return self._send(200, chat_completion(model, "The edit is fine.\nScore: %d" % s, lp, s))
        if model == "text":
            return self._send(200, chat_completion(model, text, False))
        if model == "fail500":
            if attempt == 1:
                return self._send(500, {"error": {"message": "CUDA out of memory"}})
            return self._send(200, chat_completion(model, text, False))
        if model == "retry429":
            if attempt == 1:
                return self._send(429, {"error": "slow down"}, headers={"Retry-After": "1"})
            return self._send(200, chat_completion(model, text, False))
        if model == "slow":   # odd ids: always past the timeout; even ids: only the first attempt
            if num % 2 == 1 or attempt == 1:
                self._sleep(2.5)
            return self._send(200, chat_completion(model, text, False))
        if model == "reset":  # odd ids: always reset; even ids: only the first attempt
            if num % 2 == 1 or attempt == 1:
                return self._reset()
            return self._send(200, chat_completion(model, text, False))
        if model == "malformed":
            return self._send(200, '{"choices": [{"message": {"content": "Score: 7"')
        if model == "noscore":
            return self._send(200, chat_completion(model, "The image shows 3 cats on a sofa; I cannot rate it.", False))
        if model == "big":    # a valid 50 MB completion: padding, then the reply
            with srv.lock:
                if srv.big is None:
                    done = json.dumps(chat_completion(model, text, False))
                    srv.big = ('{"pad": "' + " " * (BIG_BODY - len(done) - 12) + '", ' + done[1:]).encode()
            return self._send(200, srv.big)
        # issue 20: text and faults a server may send
        if model == "badutf8":   # a lone surrogate, an overlong '/', a stray byte, then the score
            raw = json.dumps(chat_completion(model, "@@BAD@@ Score: %d" % s, False)).encode()
            return self._send(200, raw.replace(b"@@BAD@@", b"\xed\xa0\x80 \xc0\xaf \xff"))
        if model == "hugetext":  # 2 MB of text, the score at its end
            return self._send(200, chat_completion(model, "blah " * 400000 + "Score: %d" % s, False))
        if model == "inflogprob":  # the score digit's logprob is 1e999 (+inf once parsed)
            raw = json.dumps(chat_completion(model, "Score: %d" % s, True, s)).encode()
            return self._send(200, raw.replace(b"%.17g" % math.log(0.6), b"1e999", 1)
                              .replace(repr(math.log(0.6)).encode(), b"1e999", 1))
        if model == "silent":    # headers never come (bounded by MAX_SLEEP)
            self._sleep(MAX_SLEEP)
            return self._send(200, chat_completion(model, text, False))
        if model == "malformed-once":   # a torn body on the first attempt of each request only
            if attempt == 1:
                return self._send(200, '{"choices": [{"message": {"content": "Score: 7"')
            return self._send(200, chat_completion(model, text, False))
        if model == "wrongtype":
            return self._send(200, "<html><body><h1>Please sign in</h1></body></html>", "text/html; charset=utf-8")
        if model == "badrequest":
            return self._send(400, {"error": {"message": "image too large for this model"}})
        return self._send(404, {"error": {"message": "The model `%s` does not exist." % model}})

    # -- editor ----------------------------------------------------------
    def _edit(self, srv, body):
        fields = parse_multipart(body, self.headers.get("Content-Type", ""))
        model = self.entry["model"] = fields.get("model", b"").decode()
        self.entry["prompt"] = fields.get("prompt", b"").decode()
        self.entry["fields"] = {k: v.decode(errors="replace") for k, v in fields.items()
                                if k not in ("image", "image[]")}
        uploads = fields.get("image[]") or ([fields["image"]] if "image" in fields else [])
        if not uploads or ("image" in fields and "image[]" in fields):
            return self._send(400, {"error": "no image, or both image and image[]"})
        upload = self.entry["upload"] = uploads[0]
        self.entry["uploads"] = uploads
        with Image.open(io.BytesIO(upload)) as im:
            out = ImageOps.invert(im.convert("RGB"))
        buf = io.BytesIO()
        out.save(buf, "PNG")
        png = buf.getvalue()
        if model == "edit-b64":
            return self._send(200, {"created": 0, "data": [{"b64_json": base64.b64encode(png).decode()}]})
        if model == "edit-url":
            with srv.lock:
                name = "/files/%d.png" % len(srv.files)
                srv.files[name] = png
            return self._send(200, {"created": 0, "data": [{"url": srv.url + name}]})
        if model == "edit-garbage":
            return self._send(200, {"created": 0, "data": [{"b64_json": base64.b64encode(b"<html>no</html>").decode()}]})
        return self._send(404, {"error": "unknown model " + model})


class _Server(ThreadingHTTPServer):
    request_queue_size = 128   # the default 5 drops SYNs when many requests connect at once
    daemon_threads = True


class FakeOpenAI:
    def __init__(self, latency=0.0, api_key=None, spread=True, tls=None):
        """latency: seconds per judge reply (times 0.5..1.5 by pair when spread);
        tls: (certfile, keyfile) to serve https."""
        self.latency = latency
        self.spread = spread
        self.tls = tls
        self.api_key = api_key
        self.down = False
        self.log = []
        self.seen = {}
        self.files = {}
        self.big = None
        self.in_flight = 0
        self.max_in_flight = 0
        self.lock = threading.Lock()
        self._httpd = None

    def __enter__(self):
        self._httpd = _Server(("127.0.0.1", 0), _Handler)
        self._httpd.owner = self
        self.port = self._httpd.server_address[1]
        self.url = "%s://127.0.0.1:%d" % ("https" if self.tls else "http", self.port)
        if self.tls:
            ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            ctx.load_cert_chain(*self.tls)
            # handshake in the handler's thread, so a client that hangs up cannot stall accept()
            self._httpd.socket = ctx.wrap_socket(self._httpd.socket, server_side=True, do_handshake_on_connect=False)
        self._serving = Serving(self._httpd, MAX_LIFETIME, poll_interval=0.05)
        return self

    def __exit__(self, *exc):
        self._serving.stop()

    def reset_log(self):
        with self.lock:
            self.log.clear()
            self.seen.clear()
            self.max_in_flight = 0

    def requests(self, path="/v1/chat/completions"):
        return [e for e in self.log if e["path"].split("?")[0] == path]
