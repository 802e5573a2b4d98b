"""The device check's steps and its one JSON (run by packaging/device_check.sh; see issue 16).

    python packaging/device_check.py --device cuda|cpu --out DIR [--fixtures D1:D2] [--steps a,b]
        [--budget SECONDS] [--quick]

Each step's result goes into DIR/device_check.json as soon as it is known (a run cut short still
leaves every finished step): ``{"name", "status": "pass"|"fail"|"skip", "reason", "seconds",
"figures"}``. A failing step never stops the others; the exit status is 1 when any step failed.
Steps run in this order: environment, fixture_tests, autocast, bench_latency, bench_annotate,
oom_fallback, whisper. The in-process model steps live in device_steps.py.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
import traceback
import xml.etree.ElementTree as ET
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
STEPS = ("environment", "fixture_tests", "autocast", "bench_latency", "bench_annotate", "oom_fallback", "whisper")
FIXTURE_MODULES = ("tests/test_fixture_decoder.py", "tests/test_fixture_text.py", "tests/test_fixture_vision.py")
FIXTURE_FILES = ("config.yaml", "state_dict.pt", "inputs.pt", "outputs.pt")
# (model, input short side) for `bench latency`, as issue 16 asks.
LATENCY_MODELS = (("focalt_v1", 512), ("focall_v1", 512), ("samvitb_v1", 1024))
# The CPU rehearsal (--quick) on a small shared machine: Focal-T at a small size only (an encode of
# Focal-L, or of SAM-ViT-B, which pads every input to 1024, takes minutes on 2 busy cores).
QUICK_LATENCY_MODELS = (("focalt_v1", 128),)
CLICK_TARGET_MS = 5.0  # issue 16: click round p50 on Focal-T v1 at 512, CUDA


class Skip(Exception):
    """A step that cannot run here; the message is the reason."""


@dataclass
class Options:
    device: str
    out: Path
    fixtures: list[Path]
    steps: tuple[str, ...]
    budget: float
    quick: bool
    python: str = sys.executable
    started: float = field(default_factory=time.monotonic)

    def left(self) -> float:
        return self.budget - (time.monotonic() - self.started)


def parse_args(argv: list[str] | None = None) -> Options:
    p = argparse.ArgumentParser(prog="device_check", description="One prepared check of the GPU path (issue 16).")
    p.add_argument("--device", choices=("cuda", "cpu"), default="cuda")
    p.add_argument("--out", default=str(REPO / "bench-results" / "device_check"), help="output folder")
    p.add_argument("--fixtures", default="",
                   help=f"fixture folders or folders of them, {os.pathsep!r}-separated (default .devfix and "
                        "../shared/seem/fixtures)")
    p.add_argument("--steps", default=",".join(STEPS), help=f"comma-separated subset of {','.join(STEPS)}")
    p.add_argument("--budget", type=float, default=420.0, help="seconds; steps not started by then are skipped")
    p.add_argument("--quick", action="store_true", help="fewer repeats (the CPU rehearsal)")
    a = p.parse_args(argv)
    steps = tuple(s.strip() for s in a.steps.split(",") if s.strip())
    unknown = [s for s in steps if s not in STEPS]
    if unknown or not steps:
        p.error(f"unknown step(s) {', '.join(unknown) or '(none given)'}; choose from {', '.join(STEPS)}")
    if a.budget <= 0:
        p.error("--budget must be positive")
    roots = [Path(x) for x in a.fixtures.split(os.pathsep) if x] or [REPO / ".devfix",
                                                                     REPO.parent / "shared" / "seem" / "fixtures"]
    return Options(a.device, Path(a.out), fixture_dirs(roots), steps, a.budget, a.quick)


def fixture_dirs(roots: list[Path]) -> list[Path]:
    """Fixture folders among `roots` (each a fixture folder or a folder of them), first copy of a name wins."""
    found: dict[str, Path] = {}
    for root in roots:
        cands = [root] if all((root / f).is_file() for f in FIXTURE_FILES) else \
            sorted(p for p in root.iterdir() if p.is_dir()) if root.is_dir() else []
        for d in cands:
            if all((d / f).is_file() for f in FIXTURE_FILES):
                found.setdefault(d.name, d.resolve())
    return list(found.values())


class Report:
    """device_check.json, rewritten after every step."""

    def __init__(self, opts: Options, header: dict[str, Any]) -> None:
        self.path = opts.out / "device_check.json"
        self.data: dict[str, Any] = {**header, "steps": [], "summary": {}}
        opts.out.mkdir(parents=True, exist_ok=True)
        self.write()

    def add(self, result: dict[str, Any]) -> None:
        self.data["steps"].append(result)
        counts: dict[str, int] = {}
        for s in self.data["steps"]:
            counts[s["status"]] = counts.get(s["status"], 0) + 1
        self.data["summary"] = counts
        self.write()

    def write(self) -> None:
        tmp = self.path.with_suffix(".json.tmp")
        tmp.write_text(json.dumps(self.data, indent=1, default=str), encoding="utf-8")
        tmp.replace(self.path)


def run_step(name: str, fn: Callable[[Options], dict[str, Any]], opts: Options) -> dict[str, Any]:
    """One step -> its result record; exceptions become "fail" (with the traceback's tail), Skip "skip"."""
    t0 = time.perf_counter()
    result: dict[str, Any] = {"name": name, "status": "pass", "reason": "", "figures": {}}
    try:
        if opts.left() <= 0:
            raise Skip(f"time budget of {opts.budget:.0f} s used up before this step")
        figures = fn(opts) or {}
        result["figures"] = figures
        if figures.get("failures"):
            result["status"], result["reason"] = "fail", "; ".join(map(str, figures["failures"]))[:2000]
    except Skip as exc:
        result["status"], result["reason"] = "skip", str(exc)
    except Exception as exc:  # one broken step must not stop the others
        result["status"], result["reason"] = "fail", f"{type(exc).__name__}: {exc}"
        result["traceback"] = traceback.format_exc()[-3000:]
    result["seconds"] = round(time.perf_counter() - t0, 2)
    print(f"device_check: {name}: {result['status']} ({result['seconds']} s) {result['reason'][:300]}", flush=True)
    return result


def run_all(opts: Options, steps: dict[str, Callable[[Options], dict[str, Any]]]) -> dict[str, Any]:
    report = Report(opts, {"device": opts.device, "python": platform.python_version(), "quick": opts.quick,
                           "install": os.environ.get("DEVICE_CHECK_INSTALL", "(run without device_check.sh)"),
                           "fixtures": [str(d) for d in opts.fixtures], "budget_s": opts.budget,
                           "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())})
    for name in opts.steps:
        report.add(run_step(name, steps[name], opts))
    report.data["total_seconds"] = round(time.monotonic() - opts.started, 1)
    report.write()
    return report.data


# -- steps that run the project's own commands in subprocesses ---------------------------------

def _env(opts: Options, **extra: str) -> dict[str, str]:
    env = {**os.environ, **extra}
    env.setdefault("QT_QPA_PLATFORM", "offscreen")
    return env


def _sub(opts: Options, args: list[str], timeout: float, log: str, **env: str) -> subprocess.CompletedProcess:
    timeout = max(10.0, min(timeout, opts.left()))
    with open(opts.out / log, "w", encoding="utf-8") as fh:
        proc = subprocess.run(args, cwd=REPO, env=_env(opts, **env), stdout=fh, stderr=subprocess.STDOUT,
                              timeout=timeout, text=True)
    return proc


def _tail(opts: Options, log: str, n: int = 1500) -> str:
    return (opts.out / log).read_text(encoding="utf-8", errors="replace")[-n:]


def step_environment(opts: Options) -> dict[str, Any]:
    import torch

    figs: dict[str, Any] = {"torch": torch.__version__, "cuda_runtime": torch.version.cuda,
                            "cuda_available": torch.cuda.is_available(), "cpu_threads": torch.get_num_threads(),
                            "fixtures": [d.name for d in opts.fixtures]}
    if torch.cuda.is_available():
        props = torch.cuda.get_device_properties(0)
        figs.update(gpu=props.name, gpu_memory_gib=round(props.total_memory / 2**30, 1),
                    cudnn=torch.backends.cudnn.version(), capability=f"{props.major}.{props.minor}",
                    bf16_supported=torch.cuda.is_bf16_supported())
    try:
        import seem_annotator

        figs["seem_annotator"] = str(Path(seem_annotator.__file__).parent)
    except ImportError as exc:
        figs["failures"] = [f"seem_annotator does not import: {exc}"]
    if opts.device == "cuda" and not torch.cuda.is_available():
        figs.setdefault("failures", []).append("--device cuda but torch sees no CUDA device")
    return figs


def step_fixture_tests(opts: Options) -> dict[str, Any]:
    if not opts.fixtures:
        raise Skip("no fixture folder (copy one into .devfix/ with packaging/device_wheels.sh)")
    report = opts.out / "fixture_tests.xml"
    proc = _sub(opts, [opts.python, "-m", "pytest", "-q", "-p", "no:cacheprovider", f"--junitxml={report}",
                       *FIXTURE_MODULES], 240, "fixture_tests.log",
                SEEM_ANNOTATOR_FIXTURES=os.pathsep.join(map(str, opts.fixtures)),
                SEEM_ANNOTATOR_TEST_DEVICE=opts.device)
    counts = {"passed": 0, "skipped": 0, "failed": 0}
    failed, skipped = [], []
    if report.is_file():
        for case in ET.parse(report).getroot().iter("testcase"):
            tags = [c for c in case if c.tag in ("failure", "error", "skipped")]
            name = case.get("name", "")
            if not tags:
                counts["passed"] += 1
            elif tags[0].tag == "skipped":
                counts["skipped"] += 1
                skipped.append(f"{name}: {tags[0].get('message', '')}"[:200])
            else:
                counts["failed"] += 1
                failed.append(f"{name}: {tags[0].get('message', '')}"[:300])
    figs: dict[str, Any] = {**counts, "returncode": proc.returncode, "tf32": "off (conftest)",
                            "device": opts.device, "skipped_reasons": skipped[:20]}
    if proc.returncode != 0 or counts["failed"] or not counts["passed"]:
        figs["failures"] = failed or [f"pytest exit {proc.returncode}: {_tail(opts, 'fixture_tests.log', 600)}"]
    return figs


def step_bench_latency(opts: Options) -> dict[str, Any]:
    repeat, warmup = (3, 1) if opts.quick else (20, 3)
    models = QUICK_LATENCY_MODELS if opts.quick else LATENCY_MODELS
    figs: dict[str, Any] = {"repeat": repeat, "warmup": warmup, "models": {}}
    if opts.quick:
        figs["not_run"] = {f"{m}@{s}": "--quick (CPU rehearsal) runs Focal-T at 128 only"
                           for m, s in LATENCY_MODELS}
    failures = []
    for model, size in models:
        out = opts.out / f"latency_{model}_{size}.json"
        photo = size if opts.quick else 3000
        args = [opts.python, "-m", "seem_annotator", "bench", "latency", "--config", model, "--size",
                str(size), "--device", opts.device, "--repeat", str(repeat), "--warmup", str(warmup),
                "--photo", str(photo), "--json", str(out)]
        try:
            proc = _sub(opts, args, 180, f"latency_{model}.log")
        except subprocess.TimeoutExpired:
            failures.append(f"{model}@{size}: timed out")
            continue
        if proc.returncode != 0 or not out.is_file():
            failures.append(f"{model}@{size}: exit {proc.returncode}: {_tail(opts, f'latency_{model}.log', 400)}")
            continue
        res = json.loads(out.read_text())
        figs["models"][f"{model}@{size}"] = {k: res[k] for k in ("encode_ms", "click_ms", "full_decoder_ms",
                                                                  "text_click_ms", "cold_click_ms",
                                                                  "first_click_ms", "size", "device")}
    ft = figs["models"].get("focalt_v1@512")
    if ft and opts.device == "cuda":
        figs["click_target_ms"] = CLICK_TARGET_MS
        figs["click_target_met"] = ft["click_ms"]["p50"] <= CLICK_TARGET_MS
    if failures:
        figs["failures"] = failures
    return figs


def step_bench_annotate(opts: Options) -> dict[str, Any]:
    probe = _sub(opts, [opts.python, "-m", "seem_annotator", "bench", "annotate", "--help"], 60,
                 "annotate_help.log")
    if probe.returncode != 0:
        raise Skip("`bench annotate` does not exist in this checkout (auto-annotation benchmark not landed)")
    out = opts.out / "annotate.json"
    proc = _sub(opts, [opts.python, "-m", "seem_annotator", "bench", "annotate", "--device", opts.device,
                       "--json", str(out)], 240, "annotate.log")
    if proc.returncode != 0 or not out.is_file():
        return {"failures": [f"exit {proc.returncode}: {_tail(opts, 'annotate.log', 600)}"]}
    return {"result": json.loads(out.read_text())}


def main(argv: list[str] | None = None) -> int:
    opts = parse_args(argv)
    # device_steps imports this module by name: run as a script it must find this copy (one Skip class).
    sys.modules.setdefault("device_check", sys.modules[__name__])
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    import device_steps

    steps = {"environment": step_environment, "fixture_tests": step_fixture_tests,
             "autocast": device_steps.step_autocast, "bench_latency": step_bench_latency,
             "bench_annotate": step_bench_annotate, "oom_fallback": device_steps.step_oom_fallback,
             "whisper": device_steps.step_whisper}
    data = run_all(opts, steps)
    print(f"device_check: {data['summary']} in {data['total_seconds']} s -> {opts.out / 'device_check.json'}")
    return 1 if data["summary"].get("fail") else 0


if __name__ == "__main__":
    sys.exit(main())
