#!/usr/bin/python3
"""Exports a PyTorch module to TorchScript for the expert kind "torchscript".

The expert server loads the file with torch::jit::load and calls forward(x) on batches of shape
[n, *sample_shape] (float32), trains every parameter of the module with its own optimizer, and
checkpoints parameters and buffers. The module must therefore:
  - take one float32 tensor [n, *sample_shape] and return one float32 tensor [n, *output_shape]
    (the output shape is found by running forward once on zeros of shape [1, *sample_shape]);
  - treat samples independently (no batch statistics: use LayerNorm, not BatchNorm in training);
  - keep its trainable state in parameters (anything else is not trained nor checkpointed,
    except buffers, which are checkpointed).

The scenario then names the file and the per-sample shape, e.g.
  {"kind": "torchscript", "script_path": "experts/gated_ffn.pt", "sample_shape": [512]}
(sample_shape may be left out when it is [hidden]). FLOPs are estimated as 2 x parameters per
sample for this kind.

usage: /usr/bin/python3 analysis/export_torchscript_expert.py OUT_PT [HIDDEN]   (default 512)
Requires python3-torch; the tests do not run it (they build a TorchScript module from C++).
"""
import sys

import torch
from torch import nn


class GatedFfn(nn.Module):
    """An example block: LayerNorm(x + W_out (GELU(W_a x) * sigmoid(W_b x)))."""

    def __init__(self, hidden: int, inner: int):
        super().__init__()
        self.value = nn.Linear(hidden, inner)
        self.gate = nn.Linear(hidden, inner)
        self.out = nn.Linear(inner, hidden)
        self.norm = nn.LayerNorm(hidden)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = nn.functional.gelu(self.value(x)) * torch.sigmoid(self.gate(x))
        return self.norm(x + self.out(h))


def main(argv):
    if len(argv) < 2:
        print(__doc__.strip(), file=sys.stderr)
        return 2
    out_path = argv[1]
    hidden = int(argv[2]) if len(argv) > 2 else 512
    torch.manual_seed(0)  # the initial parameters travel in the file
    module = GatedFfn(hidden, 4 * hidden)
    scripted = torch.jit.script(module)  # torch.jit.trace also works for control-flow-free modules
    probe = torch.zeros(1, hidden)
    assert scripted(probe).shape == (1, hidden)
    scripted.save(out_path)
    params = sum(p.numel() for p in module.parameters())
    print(f"wrote {out_path}: sample_shape [{hidden}], {params} parameters")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
