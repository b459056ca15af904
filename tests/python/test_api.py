"""The Python API: inputs in every form, optimizers in every form, reports as objects, GPUs, and
errors a user can act on. Numbers asserted are hand calculations written next to them, or real
runs (test_accuracy.py holds the peaks to real CPU runs)."""
import json
import os
import subprocess

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F
import torchvision

import footprint


class Linear2(nn.Module):
    """Two bias-free linears: every byte is a hand count."""

    def __init__(self):
        super().__init__()
        self.a = nn.Linear(256, 512, bias=False)
        self.b = nn.Linear(512, 10, bias=False)

    def forward(self, x, scale=1.0, mask=None):
        h = self.a(x) * scale
        if mask is not None:
            h = h * mask
        return self.b(h)


def test_inference_peak_is_the_hand_count():
    # batch 8 x 256 fp32 input = 8,192 B; a(x): 8 x 512 x 4 = 16,384 B; * scale: another 16,384 B
    # while a(x) is alive; b(h): 8 x 10 x 4 = 320 B. Parameters 256 x 512 x 4 + 512 x 10 x 4 =
    # 544,768 B. CPU allocates as requested: peak = 544,768 + 8,192 + 16,384 + 16,384 = 585,728.
    r = footprint.memory(Linear2(), (8, 256), device="cpu")
    assert r.allocated_peak == 585_728
    assert r.by_category["parameters"] == 544_768
    assert r.by_category["input"] == 8_192


def test_keyword_and_non_tensor_inputs_reach_forward():
    m = Linear2()
    mask = torch.ones(8, 512)
    plain = footprint.memory(m, input_data=torch.zeros(8, 256), device="cpu")
    masked = footprint.memory(m, input_data=[torch.zeros(8, 256)], scale=2.0, mask=mask, device="cpu")
    # The mask is an input: 8 x 512 x 4 = 16,384 B more. h * mask peaks as a(x) * scale does (the
    # operand and the result, 2 x 16,384 B; a(x) is freed before it), so the peak grows by the mask.
    assert masked.by_category["input"] - plain.by_category["input"] == 16_384
    assert masked.allocated_peak - plain.allocated_peak == 16_384
    as_dict = footprint.memory(m, input_data={"x": torch.zeros(8, 256), "mask": mask}, device="cpu")
    assert as_dict.allocated_peak == masked.allocated_peak


def test_optimizer_as_name_class_or_factory_give_the_same_state():
    model = torchvision.models.resnet18()
    size = (2, 3, 64, 64)
    by_name = footprint.memory(model, size, train=True, optimizer="adamw")
    by_class = footprint.memory(model, size, train=True, optimizer=torch.optim.AdamW)
    by_factory = footprint.memory(model, size, train=True,
                                  optimizer=lambda p: torch.optim.AdamW(p, lr=1e-4, foreach=True))
    assert by_name.allocated_peak == by_class.allocated_peak == by_factory.allocated_peak
    # AdamW keeps exp_avg and exp_avg_sq: 2 x 4 B per trainable parameter (11,689,512 of them).
    assert by_name.model_states.optimizer_state == 2 * 4 * 11_689_512
    assert "foreach" in by_name.optimizer
    fused = footprint.memory(model, size, train=True,
                             optimizer=lambda p: torch.optim.AdamW(p, fused=True))
    assert "fused" in fused.optimizer
    # Fused AdamW runs one kernel per group: no foreach temporaries, so its step peaks no higher.
    assert fused.allocated_peak <= by_name.allocated_peak
    sgd = footprint.memory(model, size, train=True, optimizer="sgd")
    assert sgd.model_states.optimizer_state == 0


def test_report_is_an_object_and_prints_the_cli_table():
    r = footprint.memory(torchvision.models.resnet18(), (2, 3, 64, 64), train=True, gpu="h100")
    assert isinstance(r.allocated_peak, int) and isinstance(r.reserved_peak, int)
    assert r.reserved_peak >= r.allocated_peak
    d = r.to_dict()
    assert d["allocated_peak"] == r.allocated_peak
    assert json.loads(r.to_json()) == d
    assert "Peak allocated" in repr(r)
    html = r._repr_html_()
    assert "<table>" in html and "allocated peak" in html
    df = r.to_dataframe()
    assert set(df["category"]) >= {"parameters", "gradients", "optimizer state", "activations"}
    assert int(df["bytes"].sum()) == r.peak.bytes


def test_fits_any_gpu_and_ranks_them():
    r = footprint.memory(torchvision.models.resnet18(), (2, 3, 64, 64), train=True, gpu="h100")
    assert r.fits() is True and r.fits("h100") is True
    # 64 MiB cannot hold the step: AdamW's model states alone are 16 B x 11,689,512 parameters
    # = 178 MiB.
    assert r.fits("64MiB") is False
    ranked = r.rank_gpus()
    names = [g.gpu for g in ranked]
    assert set(names) == {g.gpu for g in footprint.gpus()}
    fitting = [g for g in ranked if g.fits]
    assert fitting and all(a.total <= b.total for a, b in zip(fitting, fitting[1:]))
    assert all(g.margin >= 0 for g in fitting)


def test_fit_finds_the_largest_batch():
    model = torchvision.models.resnet18()
    f = footprint.fit(model, (3, 64, 64), gpu="2GiB", optimizer="sgd")
    assert f.batch > 0
    assert f.at_batch.fits() is True and f.past_batch.fits() is False
    again = footprint.memory(model, (f.batch + 1, 3, 64, 64), train=True, optimizer="sgd", gpu="2GiB")
    assert again.fits() is False


def test_summary_rows_follow_module_calls():
    class Twice(nn.Module):
        def __init__(self):
            super().__init__()
            self.fc = nn.Linear(16, 16)

        def forward(self, x):
            return F.relu(self.fc(self.fc(x)))

    s = footprint.summary(Twice(), input_size=(4, 16))
    paths = [r.path for r in s.rows]
    assert paths.count("fc") == 2  # a module called twice is two rows
    # Linear 16 -> 16 on 4 rows: 4 x 16 x 16 = 1,024 MACs per call, twice.
    assert s.forward_macs == 2 * 1024
    assert s.total_params == 16 * 16 + 16


def test_the_model_is_not_changed():
    model = torchvision.models.resnet18()
    model.eval()
    weight = model.conv1.weight.detach().clone()
    footprint.memory(model, (2, 3, 64, 64), train=True)
    assert not model.training
    assert model.conv1.weight.grad is None
    assert torch.equal(model.conv1.weight, weight)
    assert model.conv1.weight.device.type == "cpu"


def test_a_model_built_on_meta_works():
    with torch.device("meta"):
        model = torchvision.models.resnet18()
    on_meta = footprint.memory(model, (2, 3, 64, 64), train=True)
    real = footprint.memory(torchvision.models.resnet18(), (2, 3, 64, 64), train=True)
    assert on_meta.allocated_peak == real.allocated_peak


class ReadsAValue(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(4, 4)

    def forward(self, x):
        if x.sum().item() > 0:  # data-dependent control flow
            return self.fc(x)
        return x


def test_data_dependent_code_gets_one_line_naming_the_module_and_line():
    model = nn.Sequential(nn.Linear(4, 4), ReadsAValue())
    with pytest.raises(footprint.ModelError) as e:
        footprint.memory(model, (2, 4))
    message = str(e.value)
    assert "\n" not in message
    assert "in module 1," in message  # the Sequential's second child
    assert "test_api.py" in message and "x.sum().item()" in message
    assert "x.is_meta" in message


def test_a_custom_op_without_meta_names_itself_and_register_meta_fixes_it():
    lib = torch.library.Library("footprint_test", "DEF")
    lib.define("scale(Tensor x) -> Tensor")
    lib.impl("scale", lambda x: x * 2, "CPU")

    class UsesCustomOp(nn.Module):
        def __init__(self):
            super().__init__()
            self.fc = nn.Linear(8, 8)

        def forward(self, x):
            return torch.ops.footprint_test.scale(self.fc(x))

    with pytest.raises(footprint.ModelError) as e:
        footprint.memory(UsesCustomOp(), (2, 8), device="cpu")
    assert "footprint_test::scale" in str(e.value) and "register_meta" in str(e.value)
    footprint.register_meta("footprint_test::scale", lambda x: torch.empty_like(x))
    r = footprint.memory(UsesCustomOp(), (2, 8), device="cpu")
    # The custom op's output is 2 x 8 x 4 = 64 B, alive with fc's (64 B) and the input (64 B):
    # parameters 8 x 8 x 4 + 8 x 4 = 288 B.
    assert r.allocated_peak == 288 + 64 + 64 + 64


def test_options_take_the_planners_names():
    """One table per option (footprint/plan.h): Python's checks, footprint.choices and the
    command line's --help read the same names. torch.optim's implementations are the three its
    optimizers take (foreach=False, foreach=True, fused=True) and auto, PyTorch's default."""
    assert [c.name for c in footprint.choices("impl")] == ["auto", "for-loop", "foreach", "fused"]
    assert "shard" in footprint.choices() and "precision" in footprint.choices()
    helps = subprocess.run([os.environ["FOOTPRINT_BIN"], "memory", "--help"], capture_output=True,
                           text=True).stdout
    for option in ("precision", "optimizer", "impl", "loss", "device"):
        names = [c.name for c in footprint.choices(option)]
        assert "{" + ",".join(names) + "}" in helps, option
        assert all(c.help and c.help in helps for c in footprint.choices(option)), option


def test_bad_arguments_say_what_was_expected():
    m = Linear2()
    with pytest.raises(ValueError, match="optimizer='adamx'"):
        footprint.memory(m, (2, 256), train=True, optimizer="adamx")
    with pytest.raises(ValueError, match="input_size"):
        footprint.memory(m, input_size=("a", 3))
    with pytest.raises(ValueError, match="no input"):
        footprint.memory(m)
    # The planner's messages, worded for Python (footprint/plan.h, word_options): the command line
    # says --gpu 'h1000' for the same mistake.
    with pytest.raises(ValueError, match="^gpu='h1000': not a GPU footprint knows"):
        footprint.memory(m, (2, 256), gpu="h1000")
    with pytest.raises(ValueError, match="^impl='fast': expected auto, for-loop, foreach or fused$"):
        footprint.memory(m, (2, 256), train=True, impl="fast")
    with pytest.raises(ValueError, match="^precision='fp8': expected fp32, fp16, bf16, bf16-amp "
                                         "or fp16-amp$"):
        footprint.memory(m, (2, 256), precision="fp8")
    with pytest.raises(ValueError, match="^gpu='h100' names a GPU, and device='cpu' estimates a CPU run"):
        footprint.memory(m, (2, 256), device="cpu", gpu="h100")
    with pytest.raises(footprint.ModelError, match="mat1 and mat2|shapes cannot be multiplied|size mismatch"):
        footprint.memory(m, (2, 255))


def test_guess_runs_an_op_without_meta_and_says_so():
    lib = torch.library.Library("footprint_guess", "DEF")
    lib.define("double(Tensor x) -> Tensor")
    lib.impl("double", lambda x: x * 2, "CPU")

    class UsesIt(nn.Module):
        def __init__(self):
            super().__init__()
            self.fc = nn.Linear(8, 8)

        def forward(self, x):
            return torch.ops.footprint_guess.double(self.fc(x))

    r = footprint.memory(UsesIt(), (2, 8), device="cpu", guess=["footprint_guess::double"])
    # As register_meta's case: parameters 288 B, input, fc's output and the op's, 64 B each.
    assert r.allocated_peak == 288 + 3 * 64
    assert any("footprint_guess::double" in g and "not exact" in g for g in r.gaps)
    s = footprint.summary(UsesIt(), (2, 8), guess=["footprint_guess::double"])
    assert any("footprint_guess::double" in g for g in s.gaps)


def test_precision_casts_tensor_inputs_as_the_parameters():
    # bf16 parameters and a real fp32 input tensor: the input runs as bf16, as model.to(bf16) would
    # need it. Linear2 at batch 8 in bf16: parameters 544,768 / 2 = 272,384 B, input 4,096 B,
    # a(x) and a(x) * scale 2 x 8,192 B.
    r = footprint.memory(Linear2(), input_data=torch.zeros(8, 256), precision="bf16", device="cpu")
    assert r.allocated_peak == 272_384 + 4_096 + 2 * 8_192


# The torch releases (torch-versions.txt: 2.9 to 2.15, docs/versions.md): what import footprint
# says about a torch it cannot run on, before it loads the engine, and what versions() names.
def test_import_names_the_supported_range_and_the_built_torch():
    from footprint import _build
    problem = footprint._torch_problem
    assert (_build.TORCH_MIN, _build.TORCH_MAX) == ("2.9", "2.15")
    assert problem(_build.TORCH_BUILT + "+cu130") is None
    assert problem("2.8.0") == (
        "footprint supports torch 2.9 to 2.15, and this Python has torch 2.8.0: install one of "
        "those (pip install 'torch>=2.9,<2.16'), then footprint again")
    assert problem("2.16.0+cpu").startswith("footprint supports torch 2.9 to 2.15, and this "
                                            "Python has torch 2.16.0:")
    other = "2.13.0" if _build.TORCH_BUILT != "2.13.0" else "2.12.1"
    assert problem(other) == (
        f"footprint was built against torch {_build.TORCH_BUILT}, and this Python has torch "
        f"{other}: reinstall it against this torch (pip install --no-build-isolation "
        "--no-cache-dir --force-reinstall footprint's source, or a wheel built for torch "
        f"{other}; docs/versions.md)")
    v = footprint.versions()
    assert v.torch == torch.__version__ and v.torch_built == _build.TORCH_BUILT
    assert v.torch_supported == "2.9 to 2.15"
    assert [r["rules"] for r in v.rules] == ["cpu", "cuda", "llm"]
    assert "NVIDIA H200" in v.rules[1]["measured"] and v.rules[1]["torch"] == "2.11.0"


def test_a_report_says_where_its_rules_were_measured():
    r = footprint.memory(nn.Linear(8, 4), (2, 8), gpu="h100")
    assert r.to_dict()["rules"].startswith("CUDA rules measured with torch 2.11.0 on an NVIDIA H200")
    release = torch.__version__.split("+")[0]
    assert r.to_dict()["rules"].endswith(
        f"this run's torch {release} is one of them" if release == "2.11.0"
        else f"carried over to this run's torch {release}")
    assert "Rules: CUDA rules measured with torch 2.11.0" in str(r)
    cpu = footprint.memory(nn.Linear(8, 4), (2, 8), device="cpu")
    assert cpu.to_dict()["rules"].startswith(
        "CPU rules measured with torch 2.9.1, 2.11.0, 2.13.0, 2.15.0 on real CPU runs")
