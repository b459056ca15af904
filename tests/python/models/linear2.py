"""A model file as a user writes one, for `footprint memory linear2.py:Linear2` (test_cli.py)."""
import torch.nn as nn


class Linear2(nn.Module):
    def __init__(self, hidden=512):
        super().__init__()
        self.a = nn.Linear(256, hidden, bias=False)
        self.b = nn.Linear(hidden, 10, bias=False)

    def forward(self, x):
        return self.b(self.a(x).relu())


def wide():
    """A factory: the same model with a wider hidden layer."""
    return Linear2(hidden=1024)


NOT_A_MODEL = 3
