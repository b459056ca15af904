"""A model whose forward calls a custom op with a CPU kernel and no meta implementation
(test_cli.py: --guess)."""
import torch
import torch.nn as nn

_lib = torch.library.Library("footprint_cli_test", "DEF")
_lib.define("double(Tensor x) -> Tensor")
_lib.impl("double", lambda x: x * 2, "CPU")


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(8, 8)

    def forward(self, x):
        return torch.ops.footprint_cli_test.double(self.fc(x))
