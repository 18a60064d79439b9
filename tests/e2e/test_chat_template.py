"""lua/evalhost/chat.lua against the Qwen-VL chat templates rendered as
transformers' apply_chat_template does (its Jinja environment: trim_blocks,
lstrip_blocks, loopcontrols).  The templates are committed fixtures
(tests/data/tokenizer/*_chat_template.jinja): Qwen2-VL/Qwen2.5-VL's published
chat template and Qwen3-VL-30B-A3B-Instruct's, as public sources carry them."""
import json
import os
import subprocess

import jinja2
import jinja2.ext
import pytest
from jinja2.sandbox import ImmutableSandboxedEnvironment

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
