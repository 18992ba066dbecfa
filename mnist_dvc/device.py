"""Where and in which precision to compute: the device, bf16 or fp32, and a record of the machine.

The one home of these decisions (tests/test_house.py checks that no other module makes them):
`setup` picks the device and the training precision, `autocast` runs a training forward pass in
it, `fp32_evaluation` runs every evaluation in fp32 whatever the training precision.

bf16 autocast is fast only where the hardware has it (CUDA GPUs that support it, CPUs with
AVX512-BF16 or AMX); elsewhere oneDNN emulates it and a CPU trains about 5x slower than in fp32.
"""

import contextlib
import platform
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

import torch


def pick_device() -> torch.device:
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def bf16_is_native(device: torch.device) -> bool:
    if device.type == "cuda":
        # Native only (compute capability 8.0+): by default torch also counts bf16 that a T4 or a
        # V100 merely emulates, which runs slower than fp32 there.
        return torch.cuda.is_bf16_supported(including_emulation=False)
    # oneDNN's own check: true with AVX512-BF16 or AMX; it follows ONEDNN_MAX_CPU_ISA.
    return device.type == "cpu" and bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())


def cpu_model() -> str:
    """The CPU's model name, with its x86 family/model numbers: a virtual machine may show only
    "AMD EPYC", which does not tell a Zen 3 (family 25, model 1) from a Zen 4 (family 25, model 17)."""
    fields = {}
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            key, _, value = line.partition(":")
            fields.setdefault(key.strip(), value.strip())
    name = fields.get("model name") or platform.processor() or platform.machine()
    if "cpu family" in fields and "model" in fields:
        name += f" (family {fields['cpu family']} model {fields['model']})"
    return name


def hardware(device: torch.device) -> str:
    """What ran the numbers: the GPU's name, or the CPU's model, vector ISA and bf16 support."""
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    bf16 = "native bf16" if bf16_is_native(device) else "no native bf16"
    return f"{cpu_model()}, {torch.backends.cpu.get_cpu_capability()}, {bf16}"


@dataclass(frozen=True)
class Precision:
    dtype: str  # "bf16" or "fp32"
    reason: str

    @property
    def bf16(self) -> bool:
        return self.dtype == "bf16"


FP32 = Precision("fp32", "train.precision is fp32")


class Setup(NamedTuple):
    device: torch.device
    precision: Precision


def setup(choice: str, device: torch.device | None = None, warn: bool = True) -> Setup:
    """Where a run computes (`device`: a torchrun rank's own; else CUDA if present, else the CPU)
    and the precision it trains in, from train.precision `choice`: `auto` is bf16 where it is
    native to the device and fp32 elsewhere; an explicit choice is honoured, with a one-line
    warning when bf16 would be emulated (slow). Evaluation is fp32 whatever this says."""
    device = device or pick_device()
    if choice == "fp32":
        return Setup(device, FP32)
    native = bf16_is_native(device)
    where = (torch.cuda.get_device_name(device) if device.type == "cuda"
             else f"CPU {torch.backends.cpu.get_cpu_capability()}")
    if choice == "bf16":
        if not native and warn:
            print(f"warning: train.precision is bf16 but {where} has no native bf16: it is emulated "
                  "and about 5x slower than fp32 (use -S train.precision=auto)", file=sys.stderr)
        return Setup(device, Precision("bf16", "train.precision is bf16"))
    if native:
        return Setup(device, Precision("bf16", f"auto: {where} has native bf16"))
    emulated = f"auto: {where} has no native bf16 (it would be emulated, ~5x slower)"
    return Setup(device, Precision("fp32", emulated))


def autocast(device: torch.device, precision: Precision):
    """A training forward pass in `precision`; fp32 stays fp32 inside a caller's bf16 autocast."""
    return torch.autocast(device_type=device.type, dtype=torch.bfloat16, enabled=precision.bf16)


def fp32_evaluation(device: torch.device):
    """Every evaluation: fp32, whatever the training precision and any autocast around it."""
    return autocast(device, FP32)


def machine_record(device: torch.device, precision: Precision) -> dict:
    """What timing.json says about where a run ran: the figures depend on it (when and from which
    commit: provenance.py)."""
    return {"device": device.type, "hardware": hardware(device), "precision": precision.dtype,
            "precision_reason": precision.reason, "processor": platform.processor() or platform.machine(),
            "torch": torch.__version__, "threads": torch.get_num_threads()}
