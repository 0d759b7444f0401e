"""The parent side of the benchmarks that run each measured training in its own process.

A worker is `<this python> bench/<worker>.py <spec.json>`: it prints one line starting with
`RESULT_MARK` and a JSON object, and everything else it prints goes to its log. The parent
records around it what the worker cannot see of itself: its wall time, its CPU time and the
1-minute load average at start and end. Also here: a fitclass commit's `src/` extracted with
`git archive` (the old loop as a baseline), and the mean and spread over seeds.

Nothing here imports torch or fitclass: each worker imports the fitclass its PYTHONPATH
names, so the parent must not bind one.
"""

from __future__ import annotations

import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
BENCH = REPO / "bench"
RESULT_MARK = "BENCH_WORKER_RESULT "


class WorkerFailed(RuntimeError):
    """A measured run failed; its log is kept for reading."""


def git(*args: str) -> str:
    return subprocess.run(["git", "-C", str(REPO), *args], check=True, capture_output=True,
                          text=True).stdout.strip()


def resolve_commit(commit: str, option: str = "--old-commit") -> str:
    try:
        return git("rev-parse", "--verify", "--quiet", f"{commit}^{{commit}}")
    except subprocess.CalledProcessError:
        sys.exit(f"{option} {commit}: not a commit of {REPO}; give a commit id or tag that "
                 f"`git log` shows")


def extract_src(commit: str, work: Path) -> Path:
    """`src/` of `commit` under `work/old` (git archive, so no worktree to unregister)."""
    target = work / "old"
    target.mkdir()
    archive = work / "old-src.tar"
    git("archive", "--format=tar", f"--output={archive}", commit, "src")
    subprocess.run(["tar", "-xf", str(archive), "-C", str(target)], check=True)
    archive.unlink()
    return target / "src"


def worker_env(pythonpath: list[Path | str], *, cpu_only: bool,
               threads: int | None = None) -> dict[str, str]:
    """The environment of one worker: PYTHONPATH replaced (only this version's fitclass),
    offline, the GPU hidden for CPU runs, and the same thread count for every system."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(str(p) for p in pythonpath)
    env["HF_HUB_OFFLINE"] = "1"
    env["PYTHONUNBUFFERED"] = "1"
    if cpu_only:
        env["CUDA_VISIBLE_DEVICES"] = ""  # every loop picks the GPU when one is visible
    if threads is not None:
        # torch.set_num_threads in the worker sets the intra-op pool; these cover the
        # OpenMP/MKL pools that libraries may size on their own at import.
        env["OMP_NUM_THREADS"] = env["MKL_NUM_THREADS"] = str(threads)
    return env


def children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def run_worker(script: str, spec: dict[str, Any], name: str, work: Path,
               env: dict[str, str]) -> dict[str, Any]:
    """Run `bench/<script>` on `spec` in its own process; its output goes to
    `work/<name>.log`; return its result with `wall_s`, `cpu_s` and `load_1m` added."""
    spec_path = work / f"{name}.json"
    spec_path.write_text(json.dumps(spec), encoding="utf-8")
    log = work / f"{name}.log"
    load_start, cpu_start = os.getloadavg()[0], children_cpu()
    started = time.perf_counter()
    with log.open("w", encoding="utf-8") as sink:
        done = subprocess.run([sys.executable, str(BENCH / script), str(spec_path)], env=env,
                              cwd=work, stdout=sink, stderr=subprocess.STDOUT, check=False)
    wall = time.perf_counter() - started
    lines = log.read_text(encoding="utf-8", errors="replace").splitlines()
    results = [line for line in lines if line.startswith(RESULT_MARK)]
    if done.returncode != 0 or not results:
        tail = "\n".join(lines[-30:])
        raise WorkerFailed(f"{name}: the worker failed (exit {done.returncode}); last lines "
                           f"of {log}:\n{tail}")
    result: dict[str, Any] = json.loads(results[-1][len(RESULT_MARK):])
    result.update(wall_s=wall, cpu_s=children_cpu() - cpu_start,
                  load_1m=[round(load_start, 2), round(os.getloadavg()[0], 2)])
    return result


def warn_unfair_overrides(pairs: list[str]) -> None:
    """`--fitclass-set` applies to fitclass alone: a `model.*` or `data.*` key would make it
    train another network or other rows than the baselines, which read the defaults."""
    unfair = [p for p in pairs if p.partition("=")[0].strip().split(".")[0] in ("model", "data")]
    if unfair:
        print(f"warning: --fitclass-set {', '.join(unfair)} changes what fitclass trains but "
              f"not what the other systems train; their rows are no longer like for like",
              flush=True)


def spread(values: list[float]) -> dict[str, float]:
    """Mean, sample std, min and max (std 0 for one value)."""
    return {"mean": statistics.fmean(values),
            "std": statistics.stdev(values) if len(values) > 1 else 0.0,
            "min": min(values), "max": max(values)}


def rotated(items: list[str], index: int) -> list[str]:
    """`items` starting at position `index` (mod len): seed i runs the systems in this
    order, so every system takes every position once over len(items) seeds."""
    shift = index % len(items)
    return items[shift:] + items[:shift]


def machine() -> dict[str, Any]:
    return {"platform": platform.platform(), "cpu_count": os.cpu_count(),
            "python": platform.python_version(), "executable": sys.executable}


def write_json(out: Path, data: dict[str, Any]) -> None:
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(data, indent=2), encoding="utf-8")
