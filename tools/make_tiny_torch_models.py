"""Writes tiny TorchScript editors and judges for the torch backend's tests,
from the venv's torch, into a directory (nothing binary is committed):

  python tools/make_tiny_torch_models.py OUT_DIR

  editor.pt          forward(Tensor img, str instruction) -> Tensor: a 3x3
                     colour mix + bias (parameters), a gain (buffer) and an
                     instruction-dependent brightness; "invert" inverts
  editor_list.pt     forward(Tensor img, List[str] instruction): the same
                     per item, so one forward serves mixed instructions
  editor_half.pt     editor.pt's code returning a 2x-downscaled image
  judge_logits.pt    forward(Tensor edited, Tensor original, str prompt):
                     [B, 11] logits from pooled differences and the prompt length
  judge_scalar.pt    the same features, one score in 0..10 per item
  judge_list.pt      judge_logits with List[str] prompts
  batch_probe.pt     a judge whose score is the batch size of its forward
  stateful.pt        an editor that adds 1 to a buffer on each call and
                     returns count/10 everywhere (which weights did it use?)
  wrong_sig.pt       forward(Tensor x) -> Tensor (wrong for both roles)
  bad_output.pt      an editor whose forward returns [B, 5]
  nan_judge.pt       a judge whose logits are NaN
  not_a_model.pt     text, not a zip
  truncated.pt       the first half of editor.pt (a zip header, no directory)

Every module is in eval mode; parameters come from a fixed seed.
"""
import os
import sys
from typing import List

import torch
import torch.nn.functional as F


def _mix(x: torch.Tensor, w: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    # a 1x1 colour mix written elementwise, so batched and single calls run
    # the very same kernels
    r = x[:, 0:1] * w[0, 0] + x[:, 1:2] * w[0, 1] + x[:, 2:3] * w[0, 2] + b[0]
    g = x[:, 0:1] * w[1, 0] + x[:, 1:2] * w[1, 1] + x[:, 2:3] * w[1, 2] + b[1]
    bl = x[:, 0:1] * w[2, 0] + x[:, 1:2] * w[2, 1] + x[:, 2:3] * w[2, 2] + b[2]
    return torch.cat([r, g, bl], dim=1)


class Editor(torch.nn.Module):
    def __init__(self, downscale: bool = False):
        super().__init__()
        gen = torch.Generator().manual_seed(7)
        self.mix = torch.nn.Parameter(torch.eye(3) * 0.8 + torch.rand(3, 3, generator=gen) * 0.1)
        self.bias = torch.nn.Parameter(torch.rand(3, generator=gen) * 0.05)
        self.register_buffer("gain", torch.tensor([1.0, 0.95, 1.05]))
        self.downscale = downscale

    def forward(self, img: torch.Tensor, instruction: str) -> torch.Tensor:
        y = _mix(img, self.mix, self.bias) * self.gain.view(1, 3, 1, 1)
        y = y + float(len(instruction) % 5) * 0.03
        if "invert" in instruction:
            y = 1.0 - y
        if self.downscale:
            y = F.avg_pool2d(y, 2)
        return y.clamp(0.0, 1.0)


class EditorList(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.inner = Editor()

    def forward(self, img: torch.Tensor, instruction: List[str]) -> torch.Tensor:
        outs = []
        for i in range(img.size(0)):
            outs.append(self.inner(img[i:i + 1], instruction[i]))
        return torch.cat(outs, dim=0)


def _features(edited: torch.Tensor, original: torch.Tensor, prompt_len: int) -> torch.Tensor:
    a = F.adaptive_avg_pool2d(edited, 4)
    b = F.adaptive_avg_pool2d(original, 4)
    diff = (a - b).abs().mean(dim=[1, 2, 3])
    bright = a.mean(dim=[1, 2, 3])
    plen = torch.full_like(diff, float(prompt_len % 13) / 13.0)
    return torch.stack([diff, bright, plen], dim=1)


class JudgeLogits(torch.nn.Module):
    def __init__(self):
        super().__init__()
        gen = torch.Generator().manual_seed(11)
        self.proj = torch.nn.Parameter(torch.randn(11, 3, generator=gen) * 3.0)
        self.bias = torch.nn.Parameter(torch.randn(11, generator=gen))
        self.register_buffer("temperature", torch.tensor(0.7))

    def forward(self, edited: torch.Tensor, original: torch.Tensor, prompt: str) -> torch.Tensor:
        f = _features(edited, original, len(prompt))
        # elementwise product and sum: the same arithmetic per row whatever the batch
        logits = (f.unsqueeze(1) * self.proj.unsqueeze(0)).sum(dim=2) + self.bias
        return logits / self.temperature


class JudgeScalar(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.scale = torch.nn.Parameter(torch.tensor(10.0))

    def forward(self, edited: torch.Tensor, original: torch.Tensor, prompt: str) -> torch.Tensor:
        f = _features(edited, original, len(prompt))
        return (self.scale * (1.0 - f[:, 0] * 4.0) - f[:, 2]).clamp(0.0, 10.0)


class JudgeList(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.inner = JudgeLogits()

    def forward(self, edited: torch.Tensor, original: torch.Tensor, prompt: List[str]) -> torch.Tensor:
        outs = []
        for i in range(edited.size(0)):
            outs.append(self.inner(edited[i:i + 1], original[i:i + 1], prompt[i]))
        return torch.cat(outs, dim=0)


class BatchProbe(torch.nn.Module):
    def forward(self, edited: torch.Tensor, original: torch.Tensor, prompt: str) -> torch.Tensor:
        # the score is the number of items in the forward that scored it
        return torch.full([edited.size(0)], float(edited.size(0)))


class Stateful(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.register_buffer("count", torch.zeros(1))

    def forward(self, img: torch.Tensor, instruction: str) -> torch.Tensor:
        # writes its own buffer: shows which copy of the weights a call used
        self.count.add_(1.0)
        return (img * 0.0 + self.count.view(1, 1, 1, 1) / 10.0).clamp(0.0, 1.0)


class WrongSig(torch.nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x


class BadOutput(torch.nn.Module):
    def forward(self, img: torch.Tensor, instruction: str) -> torch.Tensor:
        return torch.zeros(img.size(0), 5)


class NanJudge(torch.nn.Module):
    def forward(self, edited: torch.Tensor, original: torch.Tensor, prompt: str) -> torch.Tensor:
        return torch.full([edited.size(0), 11], float("nan"))


MODELS = {
    "editor.pt": lambda: Editor(),
    "editor_list.pt": lambda: EditorList(),
    "editor_half.pt": lambda: Editor(downscale=True),
    "judge_logits.pt": lambda: JudgeLogits(),
    "judge_scalar.pt": lambda: JudgeScalar(),
    "judge_list.pt": lambda: JudgeList(),
    "batch_probe.pt": lambda: BatchProbe(),
    "stateful.pt": lambda: Stateful(),
    "wrong_sig.pt": lambda: WrongSig(),
    "bad_output.pt": lambda: BadOutput(),
    "nan_judge.pt": lambda: NanJudge(),
}


def main(out_dir):
    os.makedirs(out_dir, exist_ok=True)
    for name, make in MODELS.items():
        torch.jit.save(torch.jit.script(make().eval()), os.path.join(out_dir, name))
    with open(os.path.join(out_dir, "not_a_model.pt"), "w") as f:
        f.write("this is not a TorchScript archive\n")
    with open(os.path.join(out_dir, "editor.pt"), "rb") as f:
        data = f.read()
    with open(os.path.join(out_dir, "truncated.pt"), "wb") as f:
        f.write(data[: len(data) // 2])


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit("usage: make_tiny_torch_models.py OUT_DIR")
    main(sys.argv[1])
