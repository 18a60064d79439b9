"""lua/evalhost/chat.lua against the Qwen-VL chat templates rendered as
transformers' apply_chat_template does (its Jinja environment: trim_blocks,
lstrip_blocks, loopcontrols).  The templates are committed fixtures
(tests/data/tokenizer/*_chat_template.jinja): Qwen2-VL/Qwen2.5-VL's published
chat template and Qwen3-VL-30B-A3B-Instruct's, as public sources carry them.
The native judge's C rendering of the judge-shaped cases is checked against
the same Qwen3-VL template, token for token (test_native_rendering_matches)."""
import json
import os
import subprocess

import jinja2
import jinja2.ext
import pytest
from jinja2.sandbox import ImmutableSandboxedEnvironment

from conftest import have_torch

SRC = os.environ.get("EVALHOST_SRC", os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
BIN = os.environ.get("EVALHOST_BIN", os.path.join(SRC, "build", "evalhost"))
TEMPLATES = {"qwen2": "qwen2_vl_chat_template.jinja", "qwen3": "qwen3_vl_chat_template.jinja"}

CASES = [
    [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": "Rate the edit from 0 to 10."}]}],
    [{"role": "system", "content": "You are a strict judge of image edits."},
     {"role": "user", "content": [{"type": "image"}, {"type": "image"},
                                  {"type": "text", "text": "Instruction: make the sky blue\nScore:"}]}],
    [{"role": "system", "content": "Sys"}, {"role": "user", "content": "plain text, 图像 ✨\n"}],
    [{"role": "user", "content": [{"type": "text", "text": "before "}, {"type": "image"}, {"type": "text", "text": " after"}]},
     {"role": "assistant", "content": "7"},
     {"role": "user", "content": [{"type": "video"}, {"type": "text", "text": "and this?"}]}],
    [{"role": "system", "content": [{"type": "text", "text": "S1 "}, {"type": "image"}, {"type": "text", "text": "S2"}]},
     {"role": "user", "content": [{"image": "a.png"}, {"image_url": "b.png"}, {"text": "two"}]},
     {"role": "assistant", "content": [{"type": "text", "text": "ok"}, {"type": "image"}]},
     {"role": "system", "content": "late system"},
     {"role": "user", "content": [{"type": "image"}, {"type": "text", "text": "third"}]}],
]


def render_ref(style, messages, add_vision_id, gen=True):
    env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True, extensions=[jinja2.ext.loopcontrols])
    tmpl = open(os.path.join(SRC, "tests", "data", "tokenizer", TEMPLATES[style])).read()
    return env.from_string(tmpl).render(messages=messages, add_generation_prompt=gen, add_vision_id=add_vision_id)


@pytest.mark.skipif(not os.access(BIN, os.X_OK), reason="evalhost binary not built")
@pytest.mark.parametrize("style", list(TEMPLATES))
@pytest.mark.parametrize("case", range(len(CASES)))
@pytest.mark.parametrize("vision_id", [False, True])
def test_render_matches(style, case, vision_id, tmp_path):
    spec = {"style": style, "messages": CASES[case], "add_vision_id": vision_id, "add_generation_prompt": True}
    p = tmp_path / "chat.json"
    p.write_text(json.dumps(spec))
    r = subprocess.run([BIN, os.path.join(SRC, "tests", "e2e", "chat_dump.lua")], capture_output=True,
                       env=dict(os.environ, CHAT_JSON=str(p)), cwd=SRC, timeout=60)
    assert r.returncode == 0, r.stderr.decode()
    assert r.stdout.decode() == render_ref(style, CASES[case], vision_id)


# The native judge's C rendering (host/models/backend_native.c) of the same
# cases against the same Jinja template: the Qwen3-VL fixture judge scores
# each list as the request's messages (every image part the fixture's
# edited.png) and --verbose logs its prompt ids, which must be the Jinja
# text's, pads expanded, through the fixture's tokenizer. Cases with no image
# (nothing to judge) or a video (not a judge input) are left out.
FIXTURE = os.path.join(SRC, "tests", "data", "qwen3vl", "dense")
needs_native = pytest.mark.skipif(
    not os.access(BIN, os.X_OK) or not have_torch(),
    reason="needs the evalhost binary built with libtorch (the native judge)")


def judge_input(case):
    """A list the native judge takes: a user turn with parts, no video."""
    parts = [p for m in case if isinstance(m["content"], list) for p in m["content"]]
    return (not any(p.get("type") == "video" or "video" in p for p in parts)
            and any(m["role"] == "user" and isinstance(m["content"], list) for m in case))


NATIVE_CASES = [i for i, c in enumerate(CASES) if judge_input(c)]

NATIVE_LUA = r"""
local eh = require "evalhost"
local spec = eh.json.decode(os.getenv("EH_T"))
local img = assert(eh.image.load(spec.dir .. "/edited.png"))
local msgs = {}
for i, m in ipairs(spec.messages) do
  local content = m.content
  if type(content) == "table" then
    content = {}
    for j, p in ipairs(m.content) do
      if p.text then content[j] = {type = "text", text = p.text} else content[j] = {type = "image", image = img} end
    end
  end
  msgs[i] = {role = m.role, content = content}
end
local m = assert(eh.model.open({backend = "native", path = spec.dir, device = "cpu"}, "judge"))
assert(m:load())
local r, e = m:score({image = img, messages = msgs})
assert(r, e)
"""


def expanded_ids(messages):
    from PIL import Image
    from tokenizers import Tokenizer
    from transformers import Qwen2VLImageProcessor
    text = render_ref("qwen3", messages, False)
    proc = Qwen2VLImageProcessor.from_pretrained(FIXTURE)
    grid = proc(images=[Image.open(os.path.join(FIXTURE, "edited.png")).convert("RGB")])["image_grid_thw"][0]
    pads = int(grid.prod()) // proc.merge_size ** 2
    text = text.replace("<|image_pad|>", "<|image_pad|>" * pads)
    return Tokenizer.from_file(os.path.join(FIXTURE, "tokenizer.json")).encode(text, add_special_tokens=False).ids


@needs_native
@pytest.mark.parametrize("case", NATIVE_CASES)
def test_native_rendering_matches(case, tmp_path):
    script = tmp_path / "native.lua"
    script.write_text(NATIVE_LUA)
    r = subprocess.run([BIN, "--verbose", str(script)], capture_output=True, text=True, cwd=SRC, timeout=120,
                       env=dict(os.environ, EH_T=json.dumps({"dir": FIXTURE, "messages": CASES[case]})))
    assert r.returncode == 0, r.stderr
    lines = [ln for ln in r.stderr.splitlines() if "prompt ids (" in ln]
    assert len(lines) == 1, r.stderr
    got = [int(x) for x in lines[0].split(": ")[-1].split(",")]
    assert got == expanded_ids(CASES[case])


@needs_native
@pytest.mark.parametrize("template,why", [
    ("qwen2_vl_chat_template.jinja", "it adds a default system turn (Qwen2-VL's template)"),
    (None, "it has no <|im_start|> turns or no <|vision_start|><|image_pad|><|vision_end|> picture"),
])
def test_native_refuses_another_template(template, why, tmp_path):
    """render_prompt writes Qwen3-VL's template: a snapshot with another is refused at open, by file."""
    import shutil
    d = tmp_path / "judge"
    shutil.copytree(FIXTURE, d)
    text = open(os.path.join(SRC, "tests", "data", "tokenizer", template)).read() if template else "{{ messages }}"
    (d / "chat_template.jinja").write_text(text)
    script = tmp_path / "open.lua"
    script.write_text('local m, e = evalhost.model.open({backend = "native", path = os.getenv("D"), device = "cpu"}, '
                      '"judge")\nio.write(tostring(m), "|", tostring(e))\n')
    r = subprocess.run([BIN, str(script)], capture_output=True, text=True, cwd=SRC, timeout=60,
                       env=dict(os.environ, D=str(d)))
    assert r.returncode == 0, r.stderr
    assert r.stdout.startswith("nil|"), r.stdout
    assert f"the chat template in {d}/chat_template.jinja is not Qwen3-VL's: {why}" in r.stdout


@pytest.mark.skipif(not os.access(BIN, os.X_OK), reason="evalhost binary not built")
@pytest.mark.parametrize("messages,needle", [
    ("{}", "score request: 0 messages (1..64)"),
    ('{{role = "tool", content = "x"}}', "messages[1].role is tool (system, user or assistant)"),
    ('{{role = "user", content = 7}}', "messages[1].content is a number (a string or a list of parts)"),
    ('{{role = "user", content = {{type = "image", image = "a.png"}}}}',
     "messages[1].content[1].image is a string, not an evalhost.Image"),
    ('{{role = "user", content = {{type = "video"}}}}', "messages[1].content[1] is neither"),
])
def test_bad_messages_raise(messages, needle, tmp_path):
    """A layout bug (req.messages or a replaced chat.score_messages) is a script error naming the part."""
    script = tmp_path / "bad.lua"
    script.write_text('local m = assert(evalhost.model.open({backend = "builtin", name = "metrics"}, "judge"))\n'
                      'assert(m:load())\nlocal img = assert(evalhost.image.load(os.getenv("IMG")))\n'
                      f"m:score({{image = img, original = img, messages = {messages}}})\n")
    r = subprocess.run([BIN, str(script)], capture_output=True, text=True, cwd=SRC, timeout=60,
                       env=dict(os.environ, IMG=os.path.join(FIXTURE, "edited.png")))
    assert r.returncode == 2, (r.returncode, r.stderr)
    assert needle in r.stderr, r.stderr


@needs_native
def test_native_drops_pictures_outside_user_turns(tmp_path):
    """Pictures outside user turns are not rendered (the template drops them): none left is a text-only
    request, scored exactly as the same request with an empty system turn in the picture's place
    (tests/e2e/test_native_layout.py checks text-only requests against transformers)."""
    script = tmp_path / "none.lua"
    script.write_text('local m = assert(evalhost.model.open({backend = "native", path = os.getenv("D"), '
                      'device = "cpu"}, "judge"))\nassert(m:load())\n'
                      'local img = assert(evalhost.image.load(os.getenv("D") .. "/edited.png"))\n'
                      'local a = assert(m:score({image = img, messages = {{role = "system", content = {{type = '
                      '"image", image = img}}}, {role = "user", content = "Score it."}}}))\n'
                      'local b = assert(m:score({image = img, messages = {{role = "system", content = ""}, '
                      '{role = "user", content = "Score it."}}}))\n'
                      'io.write(tostring(a.score == b.score), "|", a.text)\n')
    r = subprocess.run([BIN, str(script)], capture_output=True, text=True, cwd=SRC, timeout=60,
                       env=dict(os.environ, D=FIXTURE))
    assert r.returncode == 0, r.stderr
    assert r.stdout.startswith("true|expected "), r.stdout
