"""Seeds for fuzz_engine: small TorchScript models saved by the pinned PyTorch, each exercising a
different part of the engine (linear, conv and batch norm, an RNN, attention, control flow, a
trace with its device baked in, a functional helper, a module called twice).

usage: make_engine_seeds.py OUT_DIR
"""
import os
import sys

import torch
import torch.nn.functional as F

out = sys.argv[1]
os.makedirs(out, exist_ok=True)
torch.manual_seed(0)


class Linear(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = torch.nn.Linear(4, 3)

    def forward(self, x):
        return self.fc(x)


class ConvBn(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = torch.nn.Linear(4, 16)
        self.conv = torch.nn.Conv1d(1, 2, 3, padding=1)
        self.bn = torch.nn.BatchNorm1d(2)

    def forward(self, x):
        y = self.fc(x).unsqueeze(1)
        return F.relu(self.bn(self.conv(y))).flatten(1)


class Rnn(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.lstm = torch.nn.LSTM(4, 8, batch_first=True)

    def forward(self, x):
        y, _ = self.lstm(x.unsqueeze(1))
        return y.squeeze(1)


class Attention(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.mha = torch.nn.MultiheadAttention(4, 2, batch_first=True)

    def forward(self, x):
        q = x.unsqueeze(0)
        y, _ = self.mha(q, q, q)
        return y.squeeze(0)


class Flow(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = torch.nn.Linear(4, 4)

    def forward(self, x):
        for i in range(3):
            if i % 2 == 0:
                x = self.fc(x)
            else:
                x = torch.tanh(x) * 2.0
        return x.sum(dim=1, keepdim=True)


class Twice(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = torch.nn.Linear(4, 4)

    def forward(self, x):
        return self.fc(self.fc(x)) + torch.zeros(4, device=x.device)


for name, m in [("linear", Linear()), ("conv_bn", ConvBn()), ("rnn", Rnn()),
                ("attention", Attention()), ("flow", Flow()), ("twice", Twice())]:
    torch.jit.script(m).save(os.path.join(out, name + ".pt"))
torch.jit.trace(Twice().eval(), torch.randn(2, 4)).save(os.path.join(out, "twice_trace.pt"))
torch.jit.trace(ConvBn().train(), torch.randn(2, 4)).save(os.path.join(out, "conv_bn_trace.pt"))
print(f"wrote 8 seeds to {out}")
