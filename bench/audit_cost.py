"""What `fitclass audit` costs next to one training run of the same recipe (issue 17).

For each case, one invocation runs, interleaved and repeated, `fitclass train RECIPE` (one
run with its validation split, as a user trains it) and `fitclass audit RECIPE` with the
default proxies and with each proxy list given, each as its own process, and reports wall
seconds, the process's peak RSS and the audit's time as a multiple of the training run's.
Cases:

- `sst2-2000`: examples/real/sst2.yaml (MiniLM, 3 epochs) on the first 2,000 SST-2 rows
  (`data.limit`, validation 10% of them);
- `nsmc-20000`: examples/real/nsmc_tfidf.yaml (TF-IDF) on the first 20,000 NSMC rows.

Run on an idle machine (the times are the point):
  .venv/bin/python bench/audit_cost.py --repeats 2
  .venv/bin/python bench/audit_cost.py --cases nsmc-20000 --proxies tfidf model
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from _holdout import markdown_table, scratch_dir

ROOT = Path(__file__).resolve().parents[1]
CASES: dict[str, tuple[str, list[str]]] = {  # name: (recipe, overrides)
    "sst2-2000": ("examples/real/sst2.yaml",
                  ["data.limit=2000", "data.valid=null", "data.split.valid_size=0.1"]),
    "nsmc-20000": ("examples/real/nsmc_tfidf.yaml", ["data.limit=20000"]),
}


def timed(command: list[str]) -> tuple[float, float]:
    """Wall seconds and peak RSS (MiB) of one child process; raises when it fails."""
    start = time.perf_counter()
    child = subprocess.Popen(command, cwd=ROOT, env={**os.environ, "HF_HUB_OFFLINE": "1"},
                             stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    _, status, usage = os.wait4(child.pid, 0)
    seconds = time.perf_counter() - start
    if os.waitstatus_to_exitcode(status) != 0:
        error = child.stderr.read() if child.stderr else ""
        raise SystemExit(f"{' '.join(command)} failed:\n{error[-3000:]}")
    peak = usage.ru_maxrss / 1024  # KiB on Linux
    return seconds, peak


def commands(case: str, proxy: str | None, scratch: Path) -> list[str]:
    recipe, overrides = CASES[case]
    sets = [arg for value in overrides for arg in ("--set", value)]
    cli = [sys.executable, "-c", "from fitclass.cli import main; main()"]
    if proxy is None:
        out = scratch / f"{case}-train"
        shutil.rmtree(out, ignore_errors=True)  # the benchmark's own scratch run
        return [*cli, "train", recipe, "--out", str(out), *sets]
    out = scratch / f"{case}-audit-{proxy.replace(',', '+')}"
    shutil.rmtree(out, ignore_errors=True)
    proxy_args = [] if proxy == "default" else ["--proxy", proxy]
    return [*cli, "audit", recipe, "--out", str(out / "suspects.csv"),
            "--work-dir", str(out / "folds"), *proxy_args, *sets]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cases", nargs="+", default=list(CASES), choices=list(CASES))
    parser.add_argument("--proxies", nargs="+", default=["default"],
                        help="audit proxy lists to time besides the default ('default')")
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--out", default="bench/out/audit_cost.json")
    args = parser.parse_args()
    scratch = scratch_dir("audit_cost")
    rows: list[dict[str, Any]] = []
    for case in args.cases:
        for repeat in range(args.repeats):  # train and audits interleaved in each repeat
            for proxy in [None, *args.proxies]:
                seconds, peak = timed(commands(case, proxy, scratch))
                job = "train" if proxy is None else f"audit --proxy {proxy}"
                rows.append({"case": case, "repeat": repeat, "job": job,
                             "seconds": round(seconds, 1), "peak_rss_mib": round(peak)})
                print(rows[-1], flush=True)
    summary = []
    for case in args.cases:
        jobs = [r for r in rows if r["case"] == case]
        train = min(r["seconds"] for r in jobs if r["job"] == "train")
        for job in dict.fromkeys(r["job"] for r in jobs):
            mine = [r for r in jobs if r["job"] == job]
            best = min(r["seconds"] for r in mine)
            summary.append({"case": case, "job": job,
                            "seconds (each repeat)": ", ".join(str(r["seconds"]) for r in mine),
                            "best s": best, "x one training run": round(best / train, 2),
                            "peak RSS MiB": max(r["peak_rss_mib"] for r in mine)})
    print(markdown_table(summary, list(summary[0])))
    out = ROOT / args.out
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"rows": rows, "summary": summary,
                               "load": os.getloadavg()}, indent=2))


if __name__ == "__main__":
    main()
