"""`footprint summary|memory|fit` on models that are Python code (FILE.py:NAME) and on torch.export
programs (.pt2), through the C++ command, which runs them in Python under the engine's limits."""
import json
import os
import subprocess

import pytest
import torch

import footprint

HERE = os.path.dirname(os.path.abspath(__file__))
MODEL = os.path.join(HERE, "models", "linear2.py")
FOOTPRINT = os.environ.get("FOOTPRINT_BIN", os.path.join(HERE, "..", "..", "build", "footprint"))


def run(*args):
    p = subprocess.run([FOOTPRINT, *args], capture_output=True, text=True, timeout=300)
    return p.returncode, p.stdout, p.stderr


def test_memory_of_a_class_in_a_file_is_the_hand_count():
    rc, out, err = run("memory", MODEL + ":Linear2", "--input", "8x256", "--device", "cpu",
                       "--format", "json")
    assert rc == 0, err
    r = json.loads(out)
    # Parameters: 256 x 512 x 4 + 512 x 10 x 4 = 544,768 B. Input 8 x 256 x 4 = 8,192 B. At
    # relu: a(x) and its relu, 2 x 8 x 512 x 4 = 32,768 B. Peak 585,728 B.
    assert r["allocated_peak"] == 585_728
    assert r["source"].endswith("linear2.py:Linear2")


def test_a_factory_and_summary():
    rc, out, err = run("summary", MODEL + ":wide", "--input", "4x256", "--format", "json")
    assert rc == 0, err
    s = json.loads(out)
    assert s["params"] == 256 * 1024 + 1024 * 10
    # MACs: 4 x 256 x 1024 + 4 x 1024 x 10.
    assert s["forward"]["macs"] == 4 * 256 * 1024 + 4 * 1024 * 10


def test_fit_takes_one_samples_shape():
    rc, out, err = run("fit", MODEL + ":Linear2", "--input", "256", "--gpu", "1GiB",
                       "--format", "json")
    assert rc == 0, err
    f = json.loads(out)
    assert f["batch"] > 1 and f["fits"]["fits"] is True and f["next"]["fits"] is False


def test_a_torch_export_program(tmp_path):
    import sys
    sys.path.insert(0, os.path.dirname(MODEL))
    from linear2 import Linear2
    program = torch.export.export(Linear2(), (torch.zeros(8, 256),))
    path = str(tmp_path / "linear2.pt2")
    torch.export.save(program, path)
    rc, out, err = run("memory", path, "--input", "8x256", "--device", "cpu", "--format", "json")
    assert rc == 0, err
    # The program's graph runs the same ops: the hand count of the first test.
    assert json.loads(out)["allocated_peak"] == 585_728


@pytest.mark.parametrize("target,message", [
    ("missing.py:Net", "missing.py: no such file"),
    (MODEL + ":Nope", "has no Nope"),
    (MODEL + ":NOT_A_MODEL", "not a class or function"),
])
def test_bad_models_get_one_line(target, message):
    rc, out, err = run("memory", target, "--input", "8x256")
    assert rc in (1, 2)
    lines = [l for l in err.splitlines() if l.strip()]
    assert len(lines) == 1 and message in lines[0] and "Traceback" not in err


def test_a_model_that_cannot_run_on_meta_names_the_line(tmp_path):
    path = tmp_path / "bad.py"
    path.write_text("import torch.nn as nn\n"
                    "class Net(nn.Module):\n"
                    "    def __init__(self):\n"
                    "        super().__init__()\n"
                    "        self.fc = nn.Linear(4, 4)\n"
                    "    def forward(self, x):\n"
                    "        if x.sum().item() > 0:\n"
                    "            return self.fc(x)\n"
                    "        return x\n")
    rc, out, err = run("memory", f"{path}:Net", "--input", "2x4")
    assert rc == 1
    line = err.strip()
    assert "\n" not in line and "bad.py:7" in line and "x.sum().item()" in line


def test_guess_names_the_op_it_guessed():
    model = os.path.join(HERE, "models", "custom_op.py") + ":Net"
    rc, out, err = run("memory", model, "--input", "2x8", "--device", "cpu")
    assert rc == 1 and "footprint_cli_test::double" in err and "--guess" in err
    rc, out, err = run("memory", model, "--input", "2x8", "--device", "cpu", "--format", "json",
                       "--guess", "footprint_cli_test::double")
    assert rc == 3, err  # printed, but not exact
    r = json.loads(out)
    # Parameters 8 x 8 x 4 + 8 x 4 = 288 B; the input, fc's output and the op's: 64 B each.
    assert r["allocated_peak"] == 288 + 3 * 64
    assert any("footprint_cli_test::double" in g for g in r["gaps"])
    rc, out, err = run("memory", "model.pt", "--input", "1x3x64x64", "--guess", "x::y")
    assert rc == 2 and "--guess is for models written in Python" in err


def test_version_names_the_torch_range_and_where_the_rules_were_measured():
    from footprint import _build
    p = subprocess.run([FOOTPRINT, "--version"], capture_output=True, text=True, timeout=60)
    assert p.returncode == 0, p.stderr
    lines = p.stdout.splitlines()
    assert lines[0] == f"footprint {footprint.__version__}"
    assert lines[1] == f"torch: supports 2.9 to 2.15; built against {_build.TORCH_BUILT}"
    assert [l.split(" ")[0] for l in lines[2:]] == ["cpu", "cuda", "llm"]
    assert "torch 2.11.0, an NVIDIA H200 (sm_90), CUDA 13.0, cuDNN 9.19.0" in lines[3]
