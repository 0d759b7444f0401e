"""Data at scale (issue 15): a generated table of a million rows read, checked, split and
tokenised by fitclass before and after the issue, each phase timed, with its peak memory.

The table is fitclass's demo data at scale (`fitclass.data.demo.make_demo_frame`, the
generator behind `fitclass demo --data-only`: support messages in 4 imbalanced classes, 8%
of labels flipped, a `customer` group every ~5 rows), generated once per (--rows, --seed)
into the system temp folder and reused. Two versions of fitclass process it:
- old: `src/` of `--old-commit` (default dced920, main when issue 15 began), extracted
  with `git archive` into a temporary folder that is removed at the end;
- new: `src/` of the working tree this script lives in (uncommitted changes included).

Each run is its own process (`--worker`, `PYTHONPATH=<that version's src>`, no GPU) that
runs the phases in order, calling only API both versions have, as training does:
- read: `read_data_table` (the CSV with its field-count proof);
- check: what `prepare_data` runs on a text table before splitting: columns, texts, labels,
  `build_table`, one class, duplicates, rare classes;
- split: class names, targets, `split_rows` (--split), the two subsets, unseen labels,
  leakage, class counts;
- lengths: the truncation check: `backbone.token_lengths(train texts)` (the training's
  backbone from `get_backbone`: the embedded MiniLM's tokenizer);
- model: `backbone.build(classes)` (loads the encoder; apart, so tokenise is pure);
- tokenise: `classifier.training_data(train texts, targets, recipe)`, what the loop gets.
Before each phase the process's peak RSS is reset (`/proc/self/clear_refs`), so each
phase's `peak_mb` is the most memory the process held during it (everything earlier phases
keep included); `held_mb` is what it holds after; `start_mb` is the process after its imports
(pandas, torch, transformers), before the first phase. Where the reset is refused, peaks are
since the start (the JSON says so). `--tracemalloc` adds each phase's peak of Python
allocations (and slows every phase down).

Versions alternate which goes first in each repeat. Printed: a markdown table of the median
seconds and peak MB per phase and version, the new/old time ratio, and the rows a 24 GB
machine would hold at the measured memory per row (a linear estimate). Written to --out
(default bench/out/scale_table.json, which git ignores; after every run) and beside it as
markdown (.md).

Usage (from the repo root, on an otherwise idle machine):
    .venv/bin/python bench/scale_table.py               # 1,000,000 rows, 2 repeats
    .venv/bin/python bench/scale_table.py --rows 100000 --repeats 1   # smoke
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from _holdout import markdown_table, scratch_dir

REPO = Path(__file__).resolve().parent.parent
RESULT_MARK = "SCALE_BENCH_RESULT "
PHASES = ["read", "check", "split", "lengths", "model", "tokenise"]
MACHINE_GB = 24


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--worker", help=argparse.SUPPRESS)  # one run, from its spec file
    parser.add_argument("--generate", help=argparse.SUPPRESS)  # write the table here
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--seed", type=int, default=0, help="the demo generator's seed")
    parser.add_argument("--data", help="an existing demo-like CSV instead of generating one")
    parser.add_argument("--old-commit", default="dced920")
    parser.add_argument("--repeats", type=int, default=2,
                        help="each repeat runs both versions, alternating which goes first")
    parser.add_argument("--versions", nargs="+", choices=["old", "new"], default=["old", "new"])
    parser.add_argument("--phases", nargs="+", choices=PHASES, default=PHASES,
                        help="a prefix of the phases (each needs the ones before it)")
    parser.add_argument("--split", choices=["stratified", "group"], default="stratified",
                        help="data.split.method (group: by the customer column)")
    parser.add_argument("--max-length", type=int, default=128)
    parser.add_argument("--tracemalloc", action="store_true",
                        help="also each phase's peak of Python allocations (slower phases)")
    parser.add_argument("--out", default=str(REPO / "bench" / "out" / "scale_table.json"))
    args = parser.parse_args(argv)
    if args.phases != PHASES[:len(args.phases)]:
        parser.error(f"--phases must be a prefix of {PHASES}")
    return args


# --- the worker: one version, every phase, in its own process -----------------------------

def memory_mb(field: str) -> float:
    """VmHWM (peak) or VmRSS (now) of this process, in MB."""
    with open("/proc/self/status", encoding="ascii") as status:
        for line in status:
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024
    return float("nan")


def reset_peak() -> bool:
    """Start a new VmHWM from the current RSS (Linux >= 4.0); False where refused."""
    try:
        with open("/proc/self/clear_refs", "w", encoding="ascii") as clear:
            clear.write("5")
    except OSError:
        return False
    return True


def worker(spec_path: Path) -> None:
    """Run the phases with the fitclass that PYTHONPATH names; print one result line."""
    spec = json.loads(spec_path.read_text(encoding="utf-8"))
    # Imported here: the parent binds no fitclass; each worker imports its PYTHONPATH's.
    import inspect
    import tracemalloc

    import fitclass
    from fitclass.data import checks
    from fitclass.data.prepare import class_names_of
    from fitclass.data.readers import read_data_table
    from fitclass.data.splits import split_rows
    from fitclass.data.table import build_table
    from fitclass.models import text  # noqa: F401  # torch and transformers, before start_mb
    from fitclass.models.catalog import get_backbone

    where = Path(fitclass.__file__).resolve()
    if not where.is_relative_to(Path(spec["src"]).resolve()):
        sys.exit(f"worker: imported fitclass from {where}, expected it under {spec['src']}")
    recipe = fitclass.load_recipe(spec["recipe"])
    config, path = recipe.data, recipe.data.train
    state: dict[str, Any] = {}

    def read() -> None:
        state["frame"] = read_data_table(path, config)

    def check() -> None:  # prepare_data's text path up to the split
        frame, report = state.pop("frame"), checks.CheckReport()
        checks.check_columns(frame, path, config, need_labels=True)
        report.add(checks.check_texts(frame, path, config.text_columns))
        report.add(checks.check_label_values(frame, path, config))
        report.raise_errors()
        table = build_table(frame, path, config, with_labels=True)
        report.add(checks.check_two_classes(table.labels, path, config.limit))
        for finding in checks.check_duplicates(table.texts, table.labels, table.source):
            report.add(finding)
        report.add(checks.check_min_class_rows(table.labels, path))
        report.raise_errors()
        state.update(table=table, report=report)

    def split() -> None:
        table, report = state.pop("table"), state["report"]
        names = class_names_of(table, config)
        targets = table.targets(names)
        if "kind" in inspect.signature(split_rows).parameters:  # after issue 16: targets' kind
            from fitclass.target_kinds import kind_for
            found = split_rows(targets, kind_for(config.multilabel), table.groups, config.split)
        else:
            found = split_rows(targets, table.groups, config.split)
        train_rows, valid_rows = found
        train, valid = table.subset(train_rows), table.subset(valid_rows)
        del table
        report.add(checks.check_unseen_labels(train.labels, valid.labels, valid.source))
        report.add(checks.check_leakage(train.texts, valid.texts, valid.source,
                                        valid.positions))
        report.class_counts = {"train": checks.class_distribution(train.labels),
                               "valid": checks.class_distribution(valid.labels)}
        state.update(train=train, valid=valid, names=names)

    def lengths() -> None:
        state["backbone"] = get_backbone(recipe.model)
        found = state["backbone"].token_lengths(state["train"].texts)
        state["report"].add(checks.check_truncation(found, recipe.model.max_length, path))

    def model() -> None:
        state["classifier"] = state["backbone"].build(state["names"])

    def tokenise() -> None:
        train = state["train"]
        state["data"] = state["classifier"].training_data(
            train.texts, train.targets(state["names"]), recipe)

    steps = {"read": read, "check": check, "split": split, "lengths": lengths,
             "model": model, "tokenise": tokenise}
    if spec["tracemalloc"]:
        tracemalloc.start()
    result: dict[str, Any] = {"start_mb": memory_mb("VmRSS"), "phases": {},
                              "fitclass_file": str(where)}
    for name in spec["phases"]:
        result["peak_reset"] = reset_peak()
        if spec["tracemalloc"]:
            tracemalloc.reset_peak()
        started = time.perf_counter()
        steps[name]()
        phase = {"seconds": time.perf_counter() - started, "peak_mb": memory_mb("VmHWM"),
                 "held_mb": memory_mb("VmRSS")}
        if spec["tracemalloc"]:
            phase["python_peak_mb"] = tracemalloc.get_traced_memory()[1] / 2**20
        result["phases"][name] = phase
    result["train_rows"] = len(state["train"]) if "train" in state else None
    result["findings"] = {f.check: f.count for f in state["report"].findings} \
        if "report" in state else {}
    print(RESULT_MARK + json.dumps(result), flush=True)


# --- the parent: the table, the two versions, the interleaved runs ------------------------

def git(*args: str) -> str:
    return subprocess.run(["git", "-C", str(REPO), *args], check=True, capture_output=True,
                          text=True).stdout.strip()


def extract_src(commit: str, work: Path) -> Path:
    """`src/` of `commit` under `work/old` (git archive: no worktree to unregister)."""
    (work / "old").mkdir()
    archive = work / "old-src.tar"
    git("archive", "--format=tar", f"--output={archive}", commit, "src")
    subprocess.run(["tar", "-xf", str(archive), "-C", str(work / "old")], check=True)
    archive.unlink()
    return work / "old" / "src"


def worker_env(src: Path) -> dict[str, str]:
    env = dict(os.environ, PYTHONPATH=str(src), HF_HUB_OFFLINE="1")
    env["CUDA_VISIBLE_DEVICES"] = ""
    return env


def table_path(args: argparse.Namespace) -> Path:
    """The generated table (made once by the new src's generator, then reused)."""
    if args.data:
        return Path(args.data).resolve()
    path = scratch_dir("scale_table") / f"demo-{args.rows}-seed{args.seed}.csv"
    if path.is_file():
        print(f"reusing {path}", flush=True)
        return path
    print(f"generating {args.rows} rows into {path}", flush=True)
    started = time.perf_counter()
    subprocess.run([sys.executable, str(Path(__file__).resolve()), "--generate", str(path),
                    "--rows", str(args.rows), "--seed", str(args.seed)],
                   env=worker_env(REPO / "src"), check=True)
    print(f"generated in {time.perf_counter() - started:.0f} s", flush=True)
    return path


def generate(path: Path, rows: int, seed: int) -> None:
    from fitclass.data.demo import make_demo_frame

    frame, _ = make_demo_frame(rows, 0.08, seed)
    partial = path.with_suffix(".partial")
    frame.to_csv(partial, index=False)
    partial.replace(path)  # a table interrupted half-way is never reused


def recipe(args: argparse.Namespace, path: Path) -> dict[str, Any]:
    return {"name": "scale-table",
            "data": {"train": str(path), "text": "text", "label": "label", "id": "id",
                     "group": "customer", "split": {"method": args.split}},
            "model": {"backbone": "minilm", "max_length": args.max_length}}


def run_one(args: argparse.Namespace, version: str, src: Path, path: Path, work: Path,
            repeat: int) -> dict[str, Any]:
    name = f"{version}-{repeat}"
    spec = work / f"{name}.json"
    spec.write_text(json.dumps({"src": str(src), "recipe": recipe(args, path),
                                "phases": args.phases, "tracemalloc": args.tracemalloc}),
                    encoding="utf-8")
    print(f"== {name}", flush=True)
    load = os.getloadavg()[0]
    started = time.perf_counter()
    done = subprocess.run([sys.executable, str(Path(__file__).resolve()), "--worker",
                           str(spec)], env=worker_env(src), cwd=work, capture_output=True,
                          text=True, check=False)
    lines = [line for line in done.stdout.splitlines() if line.startswith(RESULT_MARK)]
    if done.returncode != 0 or not lines:
        sys.exit(f"{name}: the worker failed (exit {done.returncode}):\n"
                 f"{done.stderr[-3000:]}")
    row = {"version": version, "repeat": repeat, **json.loads(lines[-1][len(RESULT_MARK):]),
           "wall_s": time.perf_counter() - started,
           "load_1m": [round(load, 2), round(os.getloadavg()[0], 2)]}
    print(json.dumps({k: row[k] for k in ("version", "repeat", "phases", "load_1m")}),
          flush=True)
    return row


def medians(rows: list[dict[str, Any]], version: str, phase: str) -> dict[str, float]:
    mine = [row["phases"][phase] for row in rows if row["version"] == version]
    return {key: statistics.median(p[key] for p in mine) for key in mine[0]} if mine else {}


def phase_table(rows: list[dict[str, Any]], phases: list[str]) -> list[dict[str, Any]]:
    table = []
    for phase in phases:
        old, new = medians(rows, "old", phase), medians(rows, "new", phase)
        line: dict[str, Any] = {"phase": phase}
        for version, values in (("old", old), ("new", new)):
            for key, value in values.items():
                line[f"{version}_{key.removesuffix('_mb').removesuffix('onds')}"] = value
        if old and new:
            line["new/old time"] = new["seconds"] / old["seconds"]
        table.append(line)
    return table


def capacity(rows: list[dict[str, Any]], version: str, table_rows: int) -> dict[str, float]:
    """Memory per table row above the start, and the rows MACHINE_GB would hold (linear)."""
    mine = [row for row in rows if row["version"] == version]
    if not mine:
        return {}
    peak = statistics.median(max(p["peak_mb"] for p in row["phases"].values()) for row in mine)
    start = statistics.median(row["start_mb"] for row in mine)
    per_row = (peak - start) * 2**20 / table_rows
    return {"peak_mb": peak, "start_mb": start, "bytes_per_row": per_row,
            f"rows_in_{MACHINE_GB}gb": (MACHINE_GB * 2**30 - start * 2**20) / per_row}


def shown(key: str, value: Any) -> Any:
    if not isinstance(value, float):
        return value
    return f"{value:.0f}" if key.endswith(("_peak", "_held")) else f"{value:.2f}"


def markdown(args: argparse.Namespace, rows: list[dict[str, Any]]) -> str:
    table = [{key: shown(key, value) for key, value in line.items()}
             for line in phase_table(rows, args.phases)]
    columns = list(dict.fromkeys(key for line in table for key in line))
    parts = [f"{args.rows} rows, split {args.split}, max_length {args.max_length}, "
             f"{len(rows)} runs (medians)", "", markdown_table(table, columns), ""]
    found = {json.dumps(row["findings"], sort_keys=True) for row in rows}
    same = "the same in every run" if len(found) == 1 else "DIFFER between runs"
    parts.append(f"- data check findings (check: count), {same}: {rows[0]['findings']}")
    for version in ("old", "new"):
        fit = capacity(rows, version, args.rows)
        if fit:
            parts.append(f"- {version}: peak {fit['peak_mb']:.0f} MB, "
                         f"{fit['bytes_per_row']:.0f} bytes a row above the "
                         f"{fit['start_mb']:.0f} MB start: about "
                         f"{fit[f'rows_in_{MACHINE_GB}gb'] / 1e6:.1f} million rows in "
                         f"{MACHINE_GB} GB (linear estimate)")
    return "\n".join(parts)


def report(args: argparse.Namespace, versions: dict[str, tuple[str, Path]],
           rows: list[dict[str, Any]]) -> dict[str, Any]:
    return {"benchmark": "scale_table",
            "settings": {k: v for k, v in vars(args).items() if k not in ("worker",
                                                                         "generate")},
            "versions": {name: commit for name, (commit, _) in versions.items()},
            "new_src_uncommitted_changes": bool(git("status", "--porcelain", "--", "src")),
            "machine": {"platform": platform.platform(), "cpu_count": os.cpu_count(),
                        "python": platform.python_version()},
            "results": rows, "phases": phase_table(rows, args.phases),
            "capacity": {v: capacity(rows, v, args.rows) for v in ("old", "new")}}


def main(args: argparse.Namespace) -> None:
    out = Path(args.out).resolve()
    work = Path(tempfile.mkdtemp(prefix="run-", dir=scratch_dir("scale_table")))
    try:
        versions = {"old": (git("rev-parse", args.old_commit), extract_src(args.old_commit,
                                                                              work)),
                    "new": (git("rev-parse", "HEAD"), REPO / "src")}
        path = table_path(args)
        started, rows = time.perf_counter(), []
        for repeat in range(args.repeats):
            order = args.versions if repeat % 2 == 0 else args.versions[::-1]
            for version in order:
                rows.append(run_one(args, version, versions[version][1], path, work, repeat))
                out.parent.mkdir(parents=True, exist_ok=True)
                out.write_text(json.dumps(report(args, versions, rows), indent=2),
                               encoding="utf-8")
        text = markdown(args, rows)
        print(text)
        print(f"\n{len(rows)} runs in {time.perf_counter() - started:.0f} s; results: {out}")
        out.with_suffix(".md").write_text(text + "\n", encoding="utf-8")
    finally:
        shutil.rmtree(work)


if __name__ == "__main__":
    ARGS = parse_args()
    if ARGS.worker:
        worker(Path(ARGS.worker))
    elif ARGS.generate:
        generate(Path(ARGS.generate), ARGS.rows, ARGS.seed)
    else:
        main(ARGS)
