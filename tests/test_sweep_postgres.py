"""Two `fitclass sweep` workers sharing one study in a real PostgreSQL server.

Needs FITCLASS_TEST_POSTGRES_URL (CI sets it from `.ci/postgres.sh`, which starts a server
on 127.0.0.1); skips with the reason when it is unset or the server does not answer.
"""

from __future__ import annotations

import contextlib
import importlib.util
import json
import os
import socket
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

optuna = pytest.importorskip("optuna")

URL_VARIABLE = "FITCLASS_TEST_POSTGRES_URL"
TRIALS = 4

#: Runs `fitclass sweep` exactly as the console script does (`fitclass.cli.main`), after a
#: start line: each worker imports everything, then waits until both are ready, so neither
#: can finish all trials while the other is still importing torch (that would leave it
#: nothing to do and the test would not test two workers).
WORKER = """
import sys, time
from pathlib import Path
import fitclass.cli, fitclass.sweep, optuna, sklearn, sqlalchemy  # noqa: F401 (warm up)
gate, me = Path(sys.argv[1]), sys.argv[2]
(gate / me).touch()
deadline = time.monotonic() + 120
while len(list(gate.iterdir())) < 2 and time.monotonic() < deadline:
    time.sleep(0.05)
sys.argv = ["fitclass", *sys.argv[3:]]
fitclass.cli.main()
"""


def with_driver(url: str) -> str:
    """`postgresql://` with the installed driver named: SQLAlchemy 2.0 reads a bare
    `postgresql://` as psycopg2, 2.1 as psycopg 3."""
    scheme, rest = url.split("://", 1)
    if "+" in scheme:
        return url
    for module in ("psycopg", "psycopg2"):
        if importlib.util.find_spec(module) is not None:
            return f"{scheme}+{module}://{rest}"
    pytest.skip("no PostgreSQL driver installed (pip install psycopg2-binary)")


@pytest.fixture(scope="module")
def postgres_url() -> str:
    url = os.environ.get(URL_VARIABLE)
    if not url:
        pytest.skip(f"{URL_VARIABLE} is not set (run .ci/postgres.sh to start a server)")
    url = with_driver(url)
    import sqlalchemy

    engine = sqlalchemy.create_engine(url, connect_args={"connect_timeout": 5})
    try:
        with engine.connect():
            pass
    except sqlalchemy.exc.OperationalError as error:
        pytest.skip(f"PostgreSQL at {URL_VARIABLE} does not answer: {error.orig}".strip())
    finally:
        engine.dispose()
    return url


@pytest.fixture
def study_name(postgres_url: str) -> Iterator[str]:
    name = f"fitclass-test-{uuid.uuid4().hex[:12]}"
    yield name
    with contextlib.suppress(KeyError):  # KeyError: never created (a worker failed early)
        optuna.delete_study(study_name=name, storage=postgres_url)


def worker_env() -> dict[str, str]:
    return {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1",
            "OMP_NUM_THREADS": "1", "TOKENIZERS_PARALLELISM": "false", "COLUMNS": "200"}


@pytest.mark.slow  # ~30 s: two worker processes and a third sweep call
def test_two_workers_share_one_postgres_study(tmp_path: Path, recipe_for: Any,
                                              train_csv: Path, postgres_url: str,
                                              study_name: str) -> None:
    """Both workers start together, each wanting TRIALS trials (complete + pruned) when it
    opens the study, so together they run between TRIALS and 2 * TRIALS. Every trial number
    and run directory is used once, both workers ran trials, and a later call to the same
    study runs nothing and writes a leaderboard of all of them."""
    recipe = recipe_for("tfidf", train_csv)
    recipe["sweep"] = {"params": {"model.C": {"loguniform": [0.01, 100.0]},
                                  "model.ngram_range": {"categorical": [[1, 2], [2, 4]]}},
                       "pruner": "none"}
    recipe_path = tmp_path / "recipe.yaml"
    recipe_path.write_text(yaml.safe_dump(recipe))
    shared, gate = tmp_path / "sweep", tmp_path / "gate"
    gate.mkdir()
    args = ["sweep", str(recipe_path), "--out", str(shared), "--storage", postgres_url,
            "--study", study_name, "--trials", str(TRIALS)]

    workers = [subprocess.Popen([sys.executable, "-c", WORKER, str(gate), name, *args],
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                env=worker_env())
               for name in ("a", "b")]
    outputs = []
    try:
        for worker in workers:
            outputs.append(worker.communicate(timeout=400))
    finally:
        for worker in workers:
            if worker.poll() is None:
                worker.kill()
                worker.wait()
    for worker, (stdout, stderr) in zip(workers, outputs, strict=True):
        assert worker.returncode == 0, stderr[-4000:]
        assert stdout.strip().splitlines()[-1] == str(shared)

    study = optuna.load_study(study_name=study_name, storage=postgres_url)
    trials = study.trials
    states = {t.state for t in trials}
    assert states == {optuna.trial.TrialState.COMPLETE}, states
    assert TRIALS <= len(trials) <= 2 * TRIALS
    numbers = [t.number for t in trials]
    assert len(numbers) == len(set(numbers))

    # both workers ran trials, and they are these two processes
    host = socket.gethostname()
    by_worker = {t.user_attrs["worker"] for t in trials}
    assert by_worker == {f"{host}:{w.pid}" for w in workers}

    # one run directory per trial, written once by its own trial
    run_dirs = [t.user_attrs["run_dir"] for t in trials]
    assert len(run_dirs) == len(set(run_dirs))
    on_disk = sorted(p.name for p in (shared / "trials").iterdir())
    assert on_disk == sorted(f"trial-{n:04d}" for n in numbers)
    for trial in trials:
        run_dir = Path(trial.user_attrs["run_dir"])
        status = json.loads((run_dir / "status.json").read_text())
        assert status["status"] == "finished" and not status["resumed"]
        saved = yaml.safe_load((run_dir / "recipe.yaml").read_text())
        assert saved["model"]["C"] == pytest.approx(trial.params["model.C"])
        assert saved["model"]["ngram_range"] == json.loads(trial.params["model.ngram_range"])
        metrics = json.loads((run_dir / "metrics.json").read_text())
        assert metrics["macro_f1"] == pytest.approx(trial.value)

    # joining the finished study again: nothing to run; the outputs cover every trial
    again = subprocess.run([sys.executable, "-c", WORKER, str(gate), "c", *args],
                           capture_output=True, text=True, env=worker_env(), timeout=300)
    assert again.returncode == 0, again.stderr[-4000:]
    assert f"{len(trials)} trials done, 0 to run" in again.stderr
    password = postgres_url.split("://", 1)[1].split("@", 1)[0].partition(":")[2]
    if password:  # the storage URL is logged without it
        assert ":***@" in again.stderr and f":{password}@" not in again.stderr
    summary = json.loads((shared / "sweep.json").read_text())
    assert (summary["trials"], summary["complete"]) == (len(trials), len(trials))
    assert len(optuna.load_study(study_name=study_name, storage=postgres_url).trials) == len(
        trials)
