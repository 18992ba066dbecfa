"""The pages tell the truth about what is in the repository: README.md and docs/*.md (but
docs/study.md, which the study writes from its own files).

Bugs caught: a page that cites a file that was renamed or never committed; a figure whose
record (under bench/measured/, docs/mutation/, metrics/timing.json) does not say on which CPU
and on which date it was measured; a command shown on a page that fails as typed (a flag the
script no longer takes, a module or make target that was renamed).
"""

import argparse
import functools
import importlib.util
import json
import re
import shlex
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest
from in_process import run_main, run_module

from commands import cli

ROOT = Path(__file__).resolve().parents[1]
PAGES = [ROOT / "README.md"] + sorted(p for p in (ROOT / "docs").glob("*.md") if p.name != "study.md")
FENCE = re.compile(r"^```(\w*)\n(.*?)^```", re.S | re.M)

# Outputs the pages name that a fresh clone does not hold: DVC's cache, and what commands write.
GENERATED = ("data/", "models/", "checkpoints/", "dvc_plots/", "bench/results/", "mutants/")
# Files that hold measured figures: each must say on which CPU and on which date.
RECORDS = ("bench/measured/", "docs/mutation/", "metrics/timing.json")
CPU_MODEL = re.compile(r"EPYC|Xeon|Ryzen|Core\(TM\)|family \d+ model \d+")
DATE = re.compile(r"20\d\d-\d\d-\d\d")
FILE_SUFFIXES = (".py", ".json", ".md", ".txt", ".csv", ".png", ".yaml", ".toml", ".sh", ".lock")
PROSE_PATH = re.compile(r"\b(?:bench|docs|tests|metrics|reports|figures|mnist_dvc|stages|commands)"
                        r"/[\w./-]*\w")


@functools.cache
def committed_names() -> set[str]:
    """The names of the files git tracks: a file that only this working tree holds is not in a
    clone."""
    listed = subprocess.run(["git", "ls-files", "-z"], cwd=ROOT, capture_output=True, check=True)
    return {Path(p).name for p in listed.stdout.decode().split("\0") if p}


def cited_paths(page: Path) -> set[str]:
    """Repository paths a page cites: relative links, `code` that is a path, bare paths in prose."""
    text = page.read_text()
    found = set()
    for target in re.findall(r"\]\(([^)\s]+)\)", text):
        target = target.split("#")[0]
        if target and not re.match(r"\w+:", target):
            found.add((page.parent / target).resolve().relative_to(ROOT).as_posix())
    for span in re.findall(r"`([^`\s]+)`", text) + PROSE_PATH.findall(text):
        span = span.rstrip(".,:;")
        if re.search(r"[*{}<>$]", span) or span.startswith(("/", ".", "~")):
            continue  # a pattern, a placeholder, an absolute path or a bare suffix
        if "/" in span or span.endswith(FILE_SUFFIXES):
            found.add(span)
    return {p for p in found if not p.startswith(GENERATED)}


def record_files(cited: str) -> list[Path]:
    path = ROOT / cited
    return sorted(p for p in path.iterdir() if p.is_file()) if path.is_dir() else [path]


def json_strings(value) -> list[str]:
    if isinstance(value, dict):
        return [s for k, v in value.items() for s in json_strings(v) + [str(k)]]
    if isinstance(value, list):
        return [s for v in value for s in json_strings(v)]
    return [str(value)]


def json_dates(value) -> list[str]:
    if isinstance(value, dict):
        own = [str(v) for k, v in value.items() if k == "date_utc"]
        return own + [d for v in value.values() for d in json_dates(v)]
    if isinstance(value, list):
        return [d for v in value for d in json_dates(v)]
    return []


def record_problem(path: Path) -> str | None:
    """What a record lacks (a CPU model, a date), or None. JSON must date itself in `date_utc`."""
    if path.suffix == ".json":
        data = json.loads(path.read_text())
        has_cpu = any(CPU_MODEL.search(s) for s in json_strings(data))
        has_date = any(DATE.search(d) for d in json_dates(data))
    else:
        text = path.read_text()
        has_cpu, has_date = bool(CPU_MODEL.search(text)), bool(DATE.search(text))
    missing = [what for what, ok in (("CPU model", has_cpu), ("UTC date", has_date)) if not ok]
    return f"{path.relative_to(ROOT)} records no {' and no '.join(missing)}" if missing else None


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.name)
def test_every_file_a_page_cites_exists(page):
    names = committed_names()
    missing = [c for c in sorted(cited_paths(page))
               if not ((ROOT / c).exists() if "/" in c else c in names)]
    assert missing == [], f"{page.name} cites files that are not in the repository: {missing}"


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.name)
def test_every_record_a_page_cites_names_its_cpu_and_date(page):
    cited = [c for c in sorted(cited_paths(page)) if c.startswith(RECORDS) and (ROOT / c).exists()]
    problems = [p for c in cited for f in record_files(c) if (p := record_problem(f))]
    assert problems == [], f"{page.name}: " + "; ".join(problems)


def test_record_check_sees_a_missing_date(tmp_path, monkeypatch):
    # The checker itself: a benchmark JSON with a CPU but no date_utc, and a log with neither.
    monkeypatch.setattr(sys.modules[__name__], "ROOT", tmp_path)
    (tmp_path / "a.json").write_text(json.dumps({"machine": {"hardware": "AMD EPYC (family 25 "
                                                             "model 17)"}, "note": "2026-12-04"}))
    (tmp_path / "b.txt").write_text("torch 2.13, 2 cores\n")
    assert record_problem(tmp_path / "a.json") == "a.json records no UTC date"
    assert record_problem(tmp_path / "b.txt") == "b.txt records no CPU model and no UTC date"


# --- commands, as typed ---------------------------------------------------------------------------

def page_commands(text: str) -> list[str]:
    """Shell lines of ```sh blocks, `$ ` lines of plain blocks, and inline `python -m ...`,
    `dvc ...`, `mnist-dvc ...`, `bash ...`, `make ...` spans; comments dropped, continuations
    joined."""
    found = []
    for lang, body in FENCE.findall(text):
        if lang not in ("", "sh", "bash", "console"):
            continue
        for line in body.replace("\\\n", " ").splitlines():
            if lang in ("", "console"):
                if not line.startswith("$ "):
                    continue
                line = line[2:]
            line = re.split(r"\s#\s|^#", line)[0].strip()
            if line:
                found.append(line)
    for span in re.findall(r"`([^`\n]+)`", FENCE.sub("", text)):
        if re.fullmatch(r"python3? -m [\w.]+|mnist-dvc [a-z]+", span):
            found.append(f"{span} --help")  # a command named in prose, not typed out
        elif re.match(r"(python3? -m|dvc|mnist-dvc|bash|make) ", span):
            found.append(span)
    return found


def simple_commands(line: str) -> list[list[str]]:
    """`a && b > out` -> [[a...], [b...]], without leading VAR=value assignments. A lone capital
    (`-j N`) is a placeholder for a number and becomes 1; a subcommand in capitals
    (`mnist-dvc COMMAND --help`) is the reader's choice, and is left out."""
    words, commands = ["1" if re.fullmatch(r"[A-Z]", w) else w for w in shlex.split(line)], [[]]
    if len(words) > 1 and re.fullmatch(r"[A-Z]{2,}", words[1]):
        words = words[:1] + words[2:]
    for word in words:
        if word in ("&&", "||", ";"):
            commands.append([])
        elif word == ">":
            commands[-1].append(None)  # the redirection and its target are not arguments
        else:
            commands[-1].append(word)
    result = []
    for command in commands:
        command = command[:command.index(None)] if None in command else command
        while command and re.fullmatch(r"[A-Za-z_]\w*=.*", command[0]):
            command = command[1:]
        if command:
            result.append(command)
    return result


ENV = {"PATH": f"{Path(sys.executable).parent}:/usr/bin:/bin", "HOME": str(Path.home()),
       "MNIST_THREADS": "1"}


def run(args: list[str]) -> subprocess.CompletedProcess:
    return subprocess.run(args, cwd=ROOT, capture_output=True, text=True, timeout=120, env=ENV)


PARSE_ARGS = argparse.ArgumentParser.parse_args


def parse_only(parser: argparse.ArgumentParser, *args, **kwargs):
    """argparse's parse_args, then exit 0: the command as typed, without its work."""
    PARSE_ARGS(parser, *args, **kwargs)
    sys.exit(0)


def run_parse_only(kind: str, args: list[str]) -> subprocess.CompletedProcess:
    """`python -m ARGS` (kind "module") or `mnist-dvc ARGS` (kind "console") as typed, in this
    process (tests/in_process.py: torch is imported once, not once a line), stopped right after
    argparse accepts the arguments. A module without a parse_args call (a stage) is only found,
    never run: given arguments, it fails."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(argparse.ArgumentParser, "parse_args", parse_only)
        if kind == "console":
            return run_main(lambda: cli.main(args), ["mnist-dvc", *args], cwd=ROOT)
        spec = importlib.util.find_spec(args[0])
        if spec is None:
            return subprocess.CompletedProcess(args, 1, "", f"no module named {args[0]}")
        if "parse_args(" not in Path(spec.origin).read_text():
            given = f"{args[0]} parses no arguments, given {args[1:]}" if args[1:] else ""
            return subprocess.CompletedProcess(args, 1 if given else 0, "", given)
        return run_module(*args, cwd=ROOT)


def script_python_lines(script: Path) -> list[list[str]]:
    """The `python3 -m ...` commands of a shell script, its $VARIABLES replaced by a word."""
    lines = []
    for line in script.read_text().splitlines():
        line = re.sub(r"\$\{?\w+\}?", "x", line.split(" #")[0]).strip()
        if re.match(r"python3? -m ", line):
            lines.extend(simple_commands(line))
    return lines


def check(command: list[str]) -> str | None:
    """Why `command` fails as typed, or None."""
    program, args = command[0], command[1:]
    if program == "torchrun":  # torchrun is `python -m torch.distributed.run`
        program, args = "python", ["-m", "torch.distributed.run", *args]
    if program in ("python", "python3") and args[:1] == ["-m"]:
        done = run_parse_only("module", args[1:])
        ok = done.returncode == 0
    elif program == "mnist-dvc":
        done = run_parse_only("console", args)
        ok = done.returncode == 0
    elif program == "dvc":  # --help after the words
        done = run([str(Path(sys.executable).parent / program), *args, "--help"])
        ok = done.returncode == 0
    elif program == "make":
        done = run(["make", "-n", *args])
        ok = done.returncode == 0
    elif program == "bash":
        script = ROOT / args[0]
        if not script.is_file():
            return f"{args[0]} does not exist"
        done = run(["bash", "-n", str(script)])
        problems = [check(c) for c in script_python_lines(script)]
        problems = [p for p in problems if p]
        if problems:
            return f"{args[0]}: " + "; ".join(problems)
        ok = done.returncode == 0
    elif program == "source":
        return None if (ROOT / args[0]).is_file() else f"{args[0]} does not exist"
    elif program == "git":  # usage, exit 129: the subcommand and its flags exist
        with tempfile.TemporaryDirectory() as scratch:
            subprocess.run(["git", "init", "-q", scratch], check=True)
            done = subprocess.run(["git", *args, "-h"], cwd=scratch, capture_output=True, text=True)
        ok = done.returncode == 129 and "usage: git" in done.stdout
    elif program in ("export", "cd"):
        return None  # the shell's own: nothing of this project to check
    else:
        return f"{shlex.join(command)}: no rule to check a {program!r} command"
    return None if ok else f"{shlex.join(command)}: {(done.stderr or done.stdout).strip()[-400:]}"


DOC_COMMANDS = sorted({line for page in PAGES for line in page_commands(page.read_text())})


# torchrun, run in-process, cannot hand its fault handler a stderr without a file descriptor.
@pytest.mark.filterwarnings("ignore:Unable to enable fault handler:UserWarning")
@pytest.mark.parametrize("line", DOC_COMMANDS)
def test_every_command_a_page_shows_runs_as_typed(line):
    problems = [p for command in simple_commands(line) if (p := check(command))]
    assert problems == [], problems


def test_command_check_sees_a_flag_the_script_does_not_take():
    # The checker itself: bench/gpu_check.sh once passed --repeats to time_to_accuracy.
    assert check(["python", "-m", "bench.time_to_accuracy", "--seeds", "0"]) is None
    assert "--repeats" in check(["python", "-m", "bench.time_to_accuracy", "--repeats", "3"])
    # and through the console script (whose lines were once checked with --help appended, which
    # argparse obeys before it looks at the other flags)
    assert check(["mnist-dvc", "grade", "hw7_21000000_zhangsan.pth", "--runs", "5"]) is None
    assert "--rnus" in check(["mnist-dvc", "grade", "hw7_21000000_zhangsan.pth", "--rnus", "5"])
    assert "unknown command 'grde'" in check(["mnist-dvc", "grde", "x.pth"])


def test_every_param_is_commented_in_params_yaml():
    # The README sends readers to params.yaml for what each key means. Bug caught: a param added
    # (or a default changed) without the comment that says what it does.
    uncommented, section_comment = [], ""
    for line in (ROOT / "params.yaml").read_text().splitlines():
        key = re.match(r"(\s*)(\w+):\s*([^#\s][^#]*)?(#.*)?$", line)
        if not key:
            continue
        indent, name, value, comment = key.groups()
        if not value:  # a section: its comment may explain its keys
            section_comment = comment or ""
        elif not comment and not (indent and re.search(rf"\b{name}\b", section_comment)):
            uncommented.append(name)
    assert uncommented == [], f"params.yaml keys without a comment: {uncommented}"
