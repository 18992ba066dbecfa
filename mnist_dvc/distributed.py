"""One training run across several processes: launching through torchrun, the process group and
the few collectives the training loop needs.

One process (the default, `train.processes: 1`) never touches torch.distributed: `SOLO` answers
every collective with its own value. With `train.processes: N > 1` the train stage replaces itself
with `torchrun --standalone --nproc-per-node N -m stages.train` (a free rendezvous port, so two
runs on one host never collide); each worker then joins a process group over gloo on CPUs or
NCCL on GPUs (chosen by the device type, never by hand). `train.batch_size` is the global batch:
each process takes an equal slice of every batch, so the same params mean the same training
whatever N is, with the same learning rate.
"""

import contextlib
import os
import re
import shlex
import sys
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

import torch
import torch.distributed as dist
from torch.nn.parallel import DistributedDataParallel

from mnist_dvc.cli import THREADS_ENV
from mnist_dvc.device import pick_device
from mnist_dvc.errors import MnistError

# A rank that waits this long in a collective for a dead or stuck peer fails instead of hanging.
# The longest legitimate wait is rank 0 writing a checkpoint: seconds.
TIMEOUT = timedelta(minutes=5)
TORCHRUN_ENV = ("RANK", "WORLD_SIZE", "LOCAL_RANK", "LOCAL_WORLD_SIZE")
# Set by `launch` for its workers: the train stage (dvc repro) started this torchrun.
STAGE_LAUNCH_ENV = "MNIST_TORCHRUN_BY_STAGE"


def backend_for(device: torch.device) -> str:
    """NCCL between GPUs, gloo between CPU processes (NCCL cannot move CPU tensors)."""
    return "nccl" if device.type == "cuda" else "gloo"


def available_cores() -> int:
    return len(os.sched_getaffinity(0))


def threads_per_process(processes_on_this_host: int, cores: int | None = None) -> int:
    """Share the cores: N processes on C cores get C // N torch threads each (at least 1)."""
    return max(1, (cores or available_cores()) // processes_on_this_host)


def under_torchrun() -> bool:
    return "WORLD_SIZE" in os.environ


def torchrun_command(processes: int, module: str) -> list[str]:
    """This machine only; --standalone picks a free port for the rendezvous."""
    return [sys.executable, "-m", "torch.distributed.run", "--standalone",
            f"--nproc-per-node={processes}", "-m", module]


def launch(processes: int, module: str) -> None:
    """Replace this process with torchrun running `module` in `processes` processes. Exec, not a
    child process: a signal sent to the stage (Ctrl-C, DVC stopping it) reaches torchrun, which
    stops every worker, instead of leaving orphans training on."""
    env = dict(os.environ)
    # torchrun would set 1 thread per worker and warn; each worker sets its share (see `start`).
    env.setdefault("OMP_NUM_THREADS", str(threads_per_process(processes)))
    env[STAGE_LAUNCH_ENV] = "1"
    command = torchrun_command(processes, module)
    print(f"train: {processes} processes: python {' '.join(command[1:])}", flush=True)
    sys.stderr.flush()
    os.execve(sys.executable, command, env)


@dataclass(frozen=True)
class Group:
    """This process's place in the run: rank `rank` of `size`, computing on `device`."""

    rank: int = 0
    size: int = 1
    device: torch.device | None = None

    @property
    def is_main(self) -> bool:
        """Rank 0 alone prints, loads and writes checkpoints, metrics and the model."""
        return self.rank == 0

    def slice_batch(self, index: torch.Tensor) -> tuple[torch.Tensor, float]:
        """This rank's contiguous part of one global batch, and the weight of its mean loss that
        makes the averaged gradient the mean over the whole global batch (1.0 when it divides)."""
        if self.size == 1:
            return index, 1.0
        mine = index.tensor_split(self.size)[self.rank]
        return mine, len(mine) * self.size / len(index)

    def shard(self, n: int) -> slice:
        """This rank's contiguous part of `n` items (evaluation)."""
        start, stop = (n * self.rank) // self.size, (n * (self.rank + 1)) // self.size
        return slice(start, stop)

    def sum(self, values: list[float]) -> list[float]:
        """Element-wise sum over all ranks (float64; exact for counts)."""
        if self.size == 1:
            return values
        total = torch.tensor(values, dtype=torch.float64, device=self.device)
        dist.all_reduce(total)
        return total.tolist()

    def decide(self, flag: bool) -> bool:
        """Rank 0's decision, the same on every rank (best epoch, early stopping)."""
        if self.size == 1:
            return flag
        value = torch.tensor([int(flag)], device=self.device)
        dist.broadcast(value, src=0)
        return bool(value.item())

    def share(self, obj):
        """Rank 0's object (e.g. the checkpoint it loaded) on every rank: no shared disk needed."""
        if self.size == 1:
            return obj
        box = [obj]
        dist.broadcast_object_list(box, src=0)
        return box[0]

    def barrier(self) -> None:
        if self.size > 1:
            if self.device is not None and self.device.type == "cuda":
                dist.barrier(device_ids=[self.device.index])
            else:
                dist.barrier()

    def wrap(self, model: torch.nn.Module) -> torch.nn.Module:
        """DDP averages gradients during backward. BatchNorm statistics stay per rank (no buffer
        broadcast each step); `average_buffers` merges them before every evaluation."""
        if self.size == 1:
            return model
        ids = [self.device.index] if self.device.type == "cuda" else None
        return DistributedDataParallel(model, device_ids=ids, forward_sync_buffers=False)

    def average_buffers(self, model: torch.nn.Module) -> None:
        """Mean BatchNorm running statistics over ranks: every rank then evaluates (and rank 0
        saves) the same model."""
        if self.size == 1:
            return
        for buffer in model.buffers():
            if buffer.is_floating_point():
                dist.all_reduce(buffer)
                buffer.div_(self.size)

    def augment_generator(self, generator: torch.Generator) -> torch.Generator:
        """A per-rank, per-epoch generator for augmentation, seeded from the shared generator:
        ranks draw different transforms for their different images, the shared generator stays
        identical on all ranks (the next epoch's permutation), and a resumed run redraws the same."""
        base = int(torch.randint(0, 2**62, (1,), generator=generator))
        return torch.Generator().manual_seed(base + self.rank)


SOLO = Group()


def start(processes: int, timeout: timedelta = TIMEOUT) -> Group:
    """Join the process group torchrun set up (SOLO without torchrun). The world size must be
    `train.processes`, so params and dvc.lock say how the outputs were made."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world != processes:
        raise MnistError(f"torchrun started {world} processes but train.processes = {processes}: "
                         f"set train.processes to {world} (the total over all machines) or "
                         f"launch {processes}")
    if world == 1:
        return SOLO
    missing = [name for name in TORCHRUN_ENV if name not in os.environ]
    if missing:
        raise MnistError(f"WORLD_SIZE is set but {missing[0]} is not: launch with torchrun, "
                         "not by hand")
    rank, local_rank = int(os.environ["RANK"]), int(os.environ["LOCAL_RANK"])
    if not os.environ.get(THREADS_ENV):
        torch.set_num_threads(threads_per_process(int(os.environ["LOCAL_WORLD_SIZE"])))
    device = pick_device()
    if device.type == "cuda":
        if local_rank >= torch.cuda.device_count():
            raise MnistError(f"local rank {local_rank} has no GPU ({torch.cuda.device_count()} "
                             "on this machine): lower --nproc-per-node to the GPU count")
        device = torch.device("cuda", local_rank)
        torch.cuda.set_device(device)
    dist.init_process_group(backend_for(device), timeout=timeout,
                            device_id=device if device.type == "cuda" else None)
    return Group(rank, world, device)


# What gloo and NCCL say when a peer is gone or silent (gloo raises plain RuntimeErrors).
PEER_FAILURE = re.compile(r"gloo|nccl|timed out|connection (closed|reset|refused)|broken pipe",
                          re.IGNORECASE)


def is_peer_failure(exc: BaseException) -> bool:
    return isinstance(exc, dist.DistError) or bool(PEER_FAILURE.search(str(exc)))


def shorten(text: str, limit: int = 200) -> str:
    """`text` whole if it fits in `limit` characters, else cut after the last whole word that fits,
    with "..."."""
    if len(text) <= limit:
        return text
    head = text[:limit - 2]  # a space at its end marks the end of a word of limit - 3 characters
    end = head.rfind(" ")
    kept = head[:end].rstrip(" ,;:") if end > 0 else head[:limit - 3]
    return kept + "..."


def launcher_line(argv: list[str]) -> str | None:
    """The torchrun command line in a process's arguments `argv`, as given (`torchrun ...` or
    `python -m torch.distributed.run ...`); None if `argv` is not torchrun."""
    for i, arg in enumerate(argv):
        if os.path.basename(arg) == "torchrun":
            return shlex.join(["torchrun", *argv[i + 1:]])
        if arg == "torch.distributed.run" and argv[i - 1:i] == ["-m"]:
            return shlex.join(["python", "-m", arg, *argv[i + 1:]])
    return None


def parent_argv() -> list[str]:
    """The arguments of this process's parent: torchrun's, in a torchrun worker (Linux /proc)."""
    try:
        raw = Path(f"/proc/{os.getppid()}/cmdline").read_bytes()
    except OSError:
        return []
    return [part.decode(errors="replace") for part in raw.split(b"\0")[:-1]]


def rerun_advice() -> str:
    """What to run again after a rank failed: dvc repro where the train stage started torchrun,
    else the torchrun line that started this worker (on every machine of a multi-node run, each
    with its own --node-rank)."""
    line = launcher_line(parent_argv()) or "the torchrun line that started this run"
    resume = "to resume from the last finished epoch"
    if os.environ.get(STAGE_LAUNCH_ENV):
        return f"rerun dvc repro (it starts {line} again) {resume}"
    if int(os.environ.get("GROUP_WORLD_SIZE", "1")) > 1:
        return f"rerun the torchrun line on every machine (here: {line}) {resume}"
    return f"rerun {line} {resume}"


def reason(exc: BaseException) -> str:
    """The first line of what went wrong: a project error's own words, else the exception's type
    and the first line of its message (what follows is detail or traceback)."""
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    if isinstance(exc, MnistError):
        return lines[0] if lines else "error"
    return f"{type(exc).__name__}: {lines[0]}" if lines else type(exc).__name__


def _failure_key(rank: int) -> str:
    return f"mnist_dvc/failed/{rank}"


def _store():
    """The process group's key-value store (torchrun's agent holds it: it outlives a worker)."""
    try:
        return dist.distributed_c10d._get_default_store()
    except (AttributeError, RuntimeError, ValueError):
        return None


def tell_failure(group: Group, why: str) -> None:
    """Leave this rank's reason where the surviving ranks look for it (best effort)."""
    store = _store()
    if store is not None:
        with contextlib.suppress(Exception):
            store.set(_failure_key(group.rank), why)


def failed_peer(group: Group) -> tuple[int, str] | None:
    """The lowest other rank that left a reason before failing, and that reason."""
    store = _store()
    if store is None:
        return None
    for rank in range(group.size):
        with contextlib.suppress(Exception):
            if rank != group.rank and store.check([_failure_key(rank)]):
                return rank, store.get(_failure_key(rank)).decode(errors="replace")
    return None


@contextlib.contextmanager
def session(processes: int, timeout: timedelta = TIMEOUT):
    """`start`, then leave the process group. A rank that fails says which rank it is and leaves
    the first line of its reason for the others; a rank stopped by a failed or silent peer names
    that peer and its reason when it left one, else says that another process died."""
    group = start(processes, timeout)
    try:
        yield group
    except BaseException as exc:
        if group.size == 1:
            raise
        if isinstance(exc, RuntimeError) and is_peer_failure(exc):
            failed = failed_peer(group)
            if failed is not None:
                raise MnistError(f"rank {failed[0]} failed ({shorten(failed[1])}), so rank "
                                 f"{group.rank} stopped too: {rerun_advice()}") from None
            first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
            raise MnistError(f"rank {group.rank}: another training process died or stopped "
                             f"answering ({shorten(first)}): {rerun_advice()}") from None
        tell_failure(group, reason(exc))
        if isinstance(exc, MnistError):
            raise MnistError(f"rank {group.rank}: {exc}") from None
        raise
    finally:
        if group.size > 1 and dist.is_initialized():
            dist.destroy_process_group()
