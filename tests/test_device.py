"""Device and precision choice (issue 9): `auto` follows the hardware's bf16 support, an explicit
choice is honoured, emulated bf16 is warned about once, and timing.json says where a run ran.

The capability checks are patched at the level device.py calls them (oneDNN's check for CPUs,
torch.cuda's for GPUs), so these tests also catch a bf16_is_native that asks the wrong question.
"""

import json

import pytest
import torch

from mnist_dvc import device

CPU = torch.device("cpu")
CUDA = torch.device("cuda")


@pytest.fixture
def cpu_bf16(monkeypatch):
    """set(True/False): what oneDNN reports about native bf16 on this CPU."""

    def set_native(native: bool):
        monkeypatch.setattr(torch.ops.mkldnn, "_is_mkldnn_bf16_supported", lambda: native)

    return set_native


@pytest.fixture
def fake_gpu(monkeypatch):
    """A CUDA device whose bf16 support is set(True/False); no GPU needed."""
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda *_: "Fake GPU")

    def set_native(native: bool):
        monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *_, **__: native)

    return set_native


@pytest.mark.parametrize("native, expected", [(False, "fp32"), (True, "bf16")])
def test_auto_on_cpu_follows_onednn_bf16_support(cpu_bf16, native, expected, capsys):
    # Bug caught: auto hard-coded to bf16 (5x slower on AVX2 CPUs) or to fp32 (slower on Zen 4).
    cpu_bf16(native)
    precision = device.setup("auto", CPU).precision
    assert precision.dtype == expected and precision.bf16 == (expected == "bf16")
    assert precision.reason.startswith("auto: CPU ")
    assert ("has no native bf16" in precision.reason) == (not native)
    assert capsys.readouterr().err == ""  # auto never warns: it picked what is fast


@pytest.mark.parametrize("native, expected", [(False, "fp32"), (True, "bf16")])
def test_auto_on_gpu_follows_cuda_bf16_support(fake_gpu, cpu_bf16, native, expected):
    # Bug caught: bf16_is_native asking oneDNN (the CPU) about a GPU, or the GPU's check ignored.
    fake_gpu(native)
    cpu_bf16(not native)  # the CPU's answer must not leak into the GPU's
    precision = device.setup("auto", CUDA).precision
    assert precision.dtype == expected
    assert "Fake GPU" in precision.reason


@pytest.mark.parametrize("native", [False, True])
@pytest.mark.parametrize("choice", ["bf16", "fp32"])
def test_explicit_choice_is_honoured(cpu_bf16, choice, native):
    # Bug caught: an explicit train.precision overridden by what auto would pick.
    cpu_bf16(native)
    precision = device.setup(choice, CPU, warn=False).precision
    assert precision.dtype == choice
    assert precision.reason == f"train.precision is {choice}"


def test_explicit_bf16_on_cpu_without_it_warns_in_one_line(cpu_bf16, capsys):
    # Bug caught: a silent 5x slowdown, or a warning that spills over several lines / stdout.
    cpu_bf16(False)
    assert device.setup("bf16", CPU).precision.bf16
    out, err = capsys.readouterr()
    assert out == ""
    lines = err.splitlines()
    assert len(lines) == 1 and err.endswith("\n")
    assert lines[0].startswith("warning: train.precision is bf16 but CPU ")
    assert "no native bf16" in lines[0] and "-S train.precision=auto" in lines[0]


@pytest.mark.parametrize("native, choice, warn", [(True, "bf16", True), (False, "fp32", True),
                                                  (False, "auto", True), (False, "bf16", False)])
def test_no_warning_otherwise(cpu_bf16, capsys, native, choice, warn):
    # Bug caught: warning when bf16 is native, for fp32/auto, or twice (evaluate passes warn=False).
    cpu_bf16(native)
    device.setup(choice, CPU, warn=warn)
    assert capsys.readouterr() == ("", "")


def test_autocast_runs_in_the_chosen_dtype():
    # Bug caught: autocast entered for fp32 (slow bf16 where it is emulated) or not for bf16.
    x = torch.randn(4, 8)
    layer = torch.nn.Linear(8, 3)
    with device.autocast(CPU, device.Precision("bf16", "test")):
        assert torch.is_autocast_enabled("cpu") and torch.get_autocast_dtype("cpu") == torch.bfloat16
        assert layer(x).dtype == torch.bfloat16
    with device.autocast(CPU, device.Precision("fp32", "test")):
        assert not torch.is_autocast_enabled("cpu")
        assert layer(x).dtype == torch.float32


def test_machine_record_says_where_and_how(cpu_bf16):
    # Bug caught: timing.json without the precision or hardware that its figures depend on.
    cpu_bf16(False)
    precision = device.setup("auto", CPU).precision
    record = device.machine_record(CPU, precision)
    assert set(record) == {"device", "hardware", "precision", "precision_reason", "processor",
                           "torch", "threads"}  # when and from which commit: provenance.py
    assert record["device"] == "cpu"
    # The model name tells an AMD Zen 4 from an Intel Xeon with AMX (same ISA string, other speed).
    assert record["hardware"] == (f"{device.cpu_model()}, {torch.backends.cpu.get_cpu_capability()}"
                                  ", no native bf16")
    assert record["precision"] == "fp32" and record["precision_reason"] == precision.reason
    assert record["torch"] == torch.__version__ and record["threads"] == torch.get_num_threads()
    assert record["processor"]
    json.dumps(record)  # it goes into metrics/timing.json


def test_machine_record_names_the_gpu(fake_gpu):
    fake_gpu(True)
    record = device.machine_record(CUDA, device.setup("auto", CUDA).precision)
    assert (record["device"], record["hardware"], record["precision"]) == ("cuda", "Fake GPU", "bf16")


def test_device_selection_follows_cuda_availability(monkeypatch):
    # Bug caught: a GPU left unused, or CUDA picked on a machine without it.
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert device.pick_device() == CPU
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert device.pick_device() == CUDA


def test_cpu_model_reads_name_family_and_model(monkeypatch, tmp_path):
    """Bug caught: a machine line that says only "AMD EPYC" for both a Zen 3 and a Zen 4."""
    info = tmp_path / "cpuinfo"
    info.write_text("processor\t: 0\nvendor_id\t: AuthenticAMD\ncpu family\t: 25\nmodel\t\t: 17\n"
                    "model name\t: AMD EPYC\n\nprocessor\t: 1\ncpu family\t: 25\nmodel\t\t: 17\n")
    real_path = device.Path
    monkeypatch.setattr(device, "Path", lambda p: info if p == "/proc/cpuinfo" else real_path(p))
    assert device.cpu_model() == "AMD EPYC (family 25 model 17)"


@pytest.mark.parametrize("major, expected", [(7, "fp32"), (8, "bf16")])
def test_auto_on_gpu_counts_native_bf16_only(monkeypatch, cpu_bf16, major, expected):
    """A fake torch.cuda that answers like torch 2.13's: True for a pre-Ampere GPU (T4, V100:
    compute capability 7) unless asked for native support only. Bug caught: `precision: auto`
    picking bf16 that such a GPU only emulates (slower than fp32), i.e. is_bf16_supported()
    called with its default including_emulation=True."""
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda *_: "Fake GPU")
    calls = []

    def is_bf16_supported(including_emulation=True):
        calls.append(including_emulation)
        return major >= 8 or including_emulation

    monkeypatch.setattr(torch.cuda, "is_bf16_supported", is_bf16_supported)
    cpu_bf16(True)  # the CPU's native bf16 must not count for the GPU
    assert device.setup("auto", CUDA).precision.dtype == expected
    assert calls and set(calls) == {False}


@pytest.mark.filterwarnings("ignore:CUDA is not available")
def test_autocast_on_cuda_is_cuda_autocast():
    """Bug caught: a CUDA run autocasting on the CPU device type only (torch.autocast("cpu")
    inside a GPU run: the GPU's matmuls stay fp32 while the run reports bf16). torch builds a
    CUDA autocast object without a GPU (disabled, with a warning); its device type is what the
    run would use."""
    context = device.autocast(CUDA, device.Precision("bf16", "test"))
    assert isinstance(context, torch.autocast)
    assert (context.device, context.fast_dtype) == ("cuda", torch.bfloat16)
    cpu_context = device.autocast(CPU, device.Precision("bf16", "test"))
    assert (cpu_context.device, cpu_context.fast_dtype) == ("cpu", torch.bfloat16)


def test_setup_keeps_a_given_device_and_picks_one_otherwise(monkeypatch, fake_gpu):
    """Bugs caught: a torchrun rank's own GPU (cuda:1) replaced by the default one (every rank on
    cuda:0), or a run without a given device not looking for CUDA."""
    fake_gpu(True)
    rank_gpu = torch.device("cuda", 1)
    assert device.setup("auto", rank_gpu) == (rank_gpu, device.setup("auto", CUDA).precision)
    assert device.setup("fp32", rank_gpu).device == rank_gpu
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert device.setup("fp32").device == CUDA
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert device.setup("fp32") == (CPU, device.FP32)


def test_fp32_evaluation_is_fp32_inside_a_bf16_autocast():
    """Bug caught: fp32 as "no autocast of our own" (a nullcontext), so an evaluation called inside
    a caller's bf16 autocast runs in bf16 and flips borderline argmaxes."""
    layer = torch.nn.Linear(8, 3)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        assert layer(torch.randn(4, 8)).dtype == torch.bfloat16  # the caller's autocast is on
        with device.fp32_evaluation(CPU):
            assert layer(torch.randn(4, 8)).dtype == torch.float32
        with device.autocast(CPU, device.FP32):
            assert layer(torch.randn(4, 8)).dtype == torch.float32


def test_evaluation_is_fp32_whatever_autocast_surrounds_it():
    """Bug caught: inference.logits_of not entering device.fp32_evaluation (the evaluate stage, the
    hand-in and each epoch's selection scored in whatever precision the caller was in)."""
    from mnist_dvc.digits import Digits
    from mnist_dvc.inference import logits_of
    from mnist_dvc.model import MyConvNet

    torch.manual_seed(0)
    model = MyConvNet()
    digits = Digits(torch.randint(0, 256, (16, 28, 28), dtype=torch.uint8), torch.arange(16) % 10)
    plain = logits_of(model, digits)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        inside = logits_of(model, digits)
    assert torch.equal(plain, inside)
