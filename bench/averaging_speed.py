"""Weight averaging and checkpoint writing: the implementations before issue 15 against the
current ones, on the embedded MiniLM classifier (22.7M parameters), in one process.

Measured, old and new interleaved round by round (the order alternates each round, so both
see the same machine conditions on average):

- EMA update per optimiser step: a Python loop over the state dict (`mul_` + `add_` per
  tensor) against one fused `torch._foreach_lerp_` over cached views of the module's tensors.
- Greedy soup over k snapshots (default 10) whose scripted evaluations all tie, so every
  candidate joins (the worst case of the old O(k^2) re-averaging): every member's state kept
  and re-stacked per trial, against one running sum and one candidate read at a time. The
  evaluation itself is a constant (it costs the same in both), so this is the averaging cost.
- Best checkpoint and resume state: the time training waits. Old: `save_model` (best) or
  `accelerate.save_state` plus the loop state (resume) to a staging folder and rename,
  synchronous. New: the host copy into the writer's reused buffer and the hand-off to the
  writer thread (the write itself then overlaps training; its end-to-end time is reported
  too). The resume state holds AdamW's moments after one real step.

The numbers this prints on a shared machine are indicative only; rerun on an idle machine for
the record. Usage (from the repo root):

    PYTHONPATH=src:bench .venv/bin/python bench/averaging_speed.py --rounds 5 [--device cuda]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from accelerate import Accelerator
from safetensors.torch import load_file, save_file, save_model
from torch import nn

from _holdout import markdown_table
from fitclass.atomic import follow_umask, replace_dir
from fitclass.models.text import TransformerBackbone, embedded_minilm_path
from fitclass.recipe import AveragingConfig, EmaConfig, ModelConfig
from fitclass.runs.folder import RunDir
from fitclass.training import checkpoint
from fitclass.training.accelerator import make_accelerator
from fitclass.training.averaging import Averager, Snapshot, state_of

State = dict[str, torch.Tensor]

# --- the implementations before issue 15 (averaging.py / checkpoint.py at dced920) ---------


def old_ema_start(module: nn.Module) -> State:
    return {k: v.detach().float().clone() for k, v in module.state_dict().items()
            if v.is_floating_point()}


def old_ema_update(ema: State, module: nn.Module, decay: float) -> None:
    with torch.no_grad():
        for key, value in module.state_dict().items():
            if key in ema:
                ema[key].mul_(decay).add_(value.detach().float(), alpha=1 - decay)


def old_average(states: list[State]) -> State:
    return {k: torch.stack([s[k] for s in states]).mean(0) for k in states[0]}


def old_load_state(module: nn.Module, state: State) -> None:
    current = module.state_dict()
    module.load_state_dict({**current, **{k: v.to(device=current[k].device,
                                                  dtype=current[k].dtype)
                                          for k, v in state.items()}})


def old_evaluate_state(module: nn.Module, state: State,
                       evaluate: Callable[[nn.Module], float | None]) -> float | None:
    original = state_of(module)
    old_load_state(module, state)
    try:
        return evaluate(module)
    finally:
        old_load_state(module, original)


def old_greedy_soup(snapshots: list[Snapshot], module: nn.Module,
                    evaluate: Callable[[nn.Module], float | None]) -> list[int]:
    ranked = sorted(snapshots, key=lambda s: s.value or 0.0, reverse=True)
    members, states = [ranked[0]], [load_file(str(ranked[0].path))]
    score = ranked[0].value
    for candidate in ranked[1:]:
        trial = [*states, load_file(str(candidate.path))]
        value = old_evaluate_state(module, old_average(trial), evaluate)
        if value is not None and not (score is not None and value < score):
            members, states, score = [*members, candidate], trial, value
    old_load_state(module, old_average(states))
    return [s.step for s in members]


def old_save_training_state(run: RunDir, accelerator: Accelerator,
                            loop_state: dict[str, Any]) -> None:
    staged = run.checkpoint(".last.staging")
    staged.mkdir(parents=True, exist_ok=True)
    accelerator.save_state(str(staged))
    (staged / "loop_state.json").write_text(json.dumps(loop_state, default=float),
                                            encoding="utf-8")
    follow_umask(staged)
    replace_dir(staged, run.checkpoint("last"))


def old_save_best(run: RunDir, module: nn.Module) -> None:
    staged = run.checkpoint(".best.staging")
    staged.mkdir(parents=True, exist_ok=True)
    save_model(module, str(staged / "model.safetensors"))
    follow_umask(staged)
    replace_dir(staged, run.checkpoint("best"))


# --- measurement ---------------------------------------------------------------------------


def wait(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def timed(action: Callable[[], Any], device: torch.device) -> float:
    wait(device)
    start = time.perf_counter()
    action()
    wait(device)
    return time.perf_counter() - start


def ema_round(module: nn.Module, steps: int, device: torch.device,
              first: str) -> dict[str, float]:
    """Seconds per EMA update, old and new, `first` first."""
    old = old_ema_start(module)
    new = Averager(AveragingConfig(ema=EmaConfig(decay=0.999, warmup=True)),
                   RunDir(Path(tempfile.mkdtemp())), "max")
    new.after_step(module)  # starts the average (and caches the views)

    def run_old() -> None:
        for update in range(1, steps + 1):
            old_ema_update(old, module, min(0.999, (1 + update) / (10 + update)))

    def run_new() -> None:
        for _ in range(steps):
            new.after_step(module)

    runs = {"old": run_old, "new": run_new}
    return {name: timed(runs[name], device) / steps for name in order(first)}


def order(first: str) -> list[str]:
    return [first, "new" if first == "old" else "old"]


def write_snapshots(module: nn.Module, folder: Path, k: int) -> list[Snapshot]:
    base = state_of(module)
    snapshots = []
    for index in range(k):
        path = folder / f"step-{index}.safetensors"
        save_file({key: value + 1e-3 * index for key, value in base.items()}, str(path))
        snapshots.append(Snapshot(index, float(index), 0.5, path))
    return snapshots


def soup_round(module: nn.Module, snapshots: list[Snapshot], folder: Path,
               device: torch.device, first: str) -> dict[str, float]:
    averager = Averager(AveragingConfig(soup=True), RunDir(folder), "max")
    averager.snapshots = snapshots

    def tie(_module: nn.Module) -> float:  # every trial ties with the best: all join
        return 0.5

    runs = {"old": lambda: old_greedy_soup(snapshots, module, tie),
            "new": lambda: averager.greedy_soup(module, tie)}
    return {name: timed(runs[name], device) for name in order(first)}


def write_round(old: Callable[[], None], new: Callable[[], None], device: torch.device,
                first: str) -> dict[str, float]:
    """Seconds training waits for a checkpoint, old and new; and the new write's end."""
    checkpoint.flush()
    result: dict[str, float] = {}
    for name in order(first):
        if name == "old":
            result["old"] = timed(old, device)
        else:
            start = time.perf_counter()
            result["new"] = timed(new, device)
            checkpoint.flush()
            result["new_end_to_end"] = time.perf_counter() - start
    return result


def prepared(module: nn.Module, device: torch.device) -> tuple[Accelerator, nn.Module]:
    """The module under accelerate with an AdamW state after one step on a short batch."""
    accelerator = make_accelerator("fp32")
    optimizer = torch.optim.AdamW(module.parameters(), lr=1e-5)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: 1.0)
    module, optimizer, scheduler = accelerator.prepare(module, optimizer, scheduler)
    ids = torch.randint(1000, 2000, (4, 16), device=accelerator.device)
    logits = module(input_ids=ids, attention_mask=torch.ones_like(ids))["logits"]
    accelerator.backward(logits.square().mean())
    optimizer.step()
    scheduler.step()
    optimizer.zero_grad()
    return accelerator, module


def summary(name: str, rounds: list[dict[str, float]], unit: float, label: str
            ) -> dict[str, Any]:
    old = statistics.median(r["old"] for r in rounds) * unit
    new = statistics.median(r["new"] for r in rounds) * unit
    row: dict[str, Any] = {"measure": name, f"old ({label})": old, f"new ({label})": new,
                           "old/new": old / new}
    if "new_end_to_end" in rounds[0]:
        row["new write, end to end"] = statistics.median(
            r["new_end_to_end"] for r in rounds) * unit
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--ema-steps", type=int, default=20, help="EMA updates per round")
    parser.add_argument("--k", type=int, default=10, help="snapshots in the soup")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=0,
                        help="torch threads (0: torch's default). On an oversubscribed "
                             "machine use 1: every parallel region otherwise waits for a "
                             "descheduled thread, which punishes per-tensor loops most")
    parser.add_argument("--out", default="bench/out/averaging_speed.json")
    args = parser.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    device = torch.device(args.device)
    if args.threads:
        torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    accelerator, module = prepared(TransformerBackbone(embedded_minilm_path(), ModelConfig(
        )).build(["0", "1"]).module, device)
    parameters = sum(p.numel() for p in module.parameters())
    folder = Path(tempfile.mkdtemp(prefix="averaging-speed-"))
    snapshots = write_snapshots(module, folder, args.k)
    run, loop_state = RunDir(folder / "run"), {"step": 1, "history": []}
    ema, soup, best, last, load = [], [], [], [], []
    for index in range(args.rounds):
        first = "old" if index % 2 == 0 else "new"
        ema.append(ema_round(module, args.ema_steps, device, first))
        soup.append(soup_round(module, snapshots, folder, device, first))
        best.append(write_round(lambda: old_save_best(run, module),
                                lambda: checkpoint.save_best(run, module), device, first))
        last.append(write_round(
            lambda: old_save_training_state(run, accelerator, loop_state),
            lambda: checkpoint.save_training_state(run, accelerator, loop_state),
            device, first))
        load.append(os.getloadavg()[0])
        print(f"round {index + 1}: ema {ema[-1]}, soup {soup[-1]}, best {best[-1]}, "
              f"resume {last[-1]}", flush=True)
    checkpoint.finish()
    rows = [summary("EMA update per step", ema, 1e3, "ms"),
            summary(f"greedy soup, k={args.k}, all join", soup, 1.0, "s"),
            summary("best checkpoint: training waits", best, 1e3, "ms"),
            summary("resume state: training waits", last, 1e3, "ms")]
    print(markdown_table(rows, list(dict.fromkeys(k for row in rows for k in row))))
    machine = (f"shared machine, indicative only: {os.cpu_count()} CPUs, torch threads "
               f"{torch.get_num_threads()}, load average per round {load}")
    print(f"{parameters / 1e6:.1f}M parameters on {device}; {machine}")
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"settings": vars(args), "parameters": parameters,
                               "machine": machine, "rows": rows,
                               "rounds": {"ema": ema, "soup": soup, "best": best,
                                          "resume": last}},
                              indent=2), encoding="utf-8")


if __name__ == "__main__":
    main()
