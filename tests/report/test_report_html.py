"""The HTML report: sections present, self-contained, and clean in a real headless browser."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

import fitclass
from fitclass.report.build import write_report

SECTIONS = ["headline", "per-class", "distribution", "confusion", "calibration",
            "learning-curves", "data-checks", "errors", "recipe"]


def find_chromium() -> str | None:
    for name in ("chromium", "chromium-browser", "google-chrome"):
        if shutil.which(name):
            return shutil.which(name)
    return None


@pytest.fixture(scope="session")
def chromium() -> str:
    """Debian's chromium; installed here when missing and we may (root with apt-get)."""
    found = find_chromium()
    if found is None and os.geteuid() == 0 and shutil.which("apt-get"):
        env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
        try:
            subprocess.run(["apt-get", "update", "-qq"], check=True, env=env, timeout=600,
                           capture_output=True)
            subprocess.run(["apt-get", "install", "-y", "-qq", "chromium"], check=True,
                           env=env, timeout=900, capture_output=True)
        except (subprocess.SubprocessError, OSError) as error:
            pytest.skip(f"chromium is not installed and could not be installed ({error})")
        found = find_chromium()
    if found is None:
        pytest.skip("chromium is not installed and this user cannot apt-get install it")
    return found


@pytest.fixture(scope="module")
def report_path(tmp_path_factory: pytest.TempPathFactory, train_csv: Path) -> Path:
    out = tmp_path_factory.mktemp("report") / "run"
    fitclass.train({"data": {"train": str(train_csv), "id": "id"},
                    "model": {"backbone": "tfidf"}}, out=out)
    return out / "report.html"


def test_train_writes_the_report_with_every_section(report_path: Path) -> None:
    html = report_path.read_text(encoding="utf-8")
    for section in SECTIONS:
        assert f'<section id="{section}">' in html, section
    assert "<svg" in html  # plots are inline


def test_report_is_self_contained(report_path: Path) -> None:
    html = report_path.read_text(encoding="utf-8")
    assert not re.search(r"""(src|href)\s*=\s*["']?(https?:)?//""", html)
    assert "<script" not in html and "<link" not in html


def test_report_command_rewrites_it(report_path: Path) -> None:
    report_path.unlink()
    assert write_report(report_path.parent) == report_path
    assert report_path.is_file()


def render(chromium: str, page: Path, work: Path) -> tuple[str, list[str], set[str]]:
    """(DOM after load, console messages, network URLs the page itself requested).

    Chromium's own background requests (update checks, clock) carry the initiator
    'not an origin' in the net log; anything the page loads has the page's origin."""
    netlog = work / "netlog.json"
    result = subprocess.run(
        [chromium, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         f"--user-data-dir={work / 'profile'}", "--enable-logging=stderr", "--v=0",
         f"--log-net-log={netlog}", "--dump-dom", page.resolve().as_uri()],
        capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]
    console = [line for line in result.stderr.splitlines() if ":CONSOLE" in line]
    log = json.loads(netlog.read_text(errors="ignore"))
    start_job = log["constants"]["logEventTypes"]["URL_REQUEST_START_JOB"]
    jobs = [event.get("params", {}) for event in log["events"] if event["type"] == start_job]
    requested = {job["url"] for job in jobs
                 if "url" in job and job.get("initiator") != "not an origin"}
    return result.stdout, console, requested


def test_browser_check_catches_errors_and_requests(chromium: str, tmp_path: Path) -> None:
    bad = tmp_path / "bad.html"
    bad.write_text('<img src="https://example.com/x.png"><script>console.error("boom")'
                   "</script>", encoding="utf-8")
    _, console, requested = render(chromium, bad, tmp_path)
    assert any("boom" in line for line in console)
    assert "https://example.com/x.png" in requested


def test_report_renders_in_chromium_without_errors_or_requests(
        report_path: Path, chromium: str, tmp_path: Path) -> None:
    dom, console, requested = render(chromium, report_path, tmp_path)
    for section in SECTIONS:
        assert f'id="{section}"' in dom, section
    assert console == []
    assert {url for url in requested if not url.startswith("file:")} == set()


def test_ensemble_report_lists_members(tmp_path: Path, train_csv: Path) -> None:
    runs = [fitclass.train({"data": {"train": str(train_csv), "id": "id"},
                            "model": {"backbone": "tfidf", "analyzer": analyzer}},
                           out=tmp_path / analyzer) for analyzer in ("char_wb", "word")]
    ensemble = fitclass.ensemble([r.path for r in runs], tmp_path / "ensemble", method="mean")
    html = (ensemble.path / "report.html").read_text(encoding="utf-8")
    assert '<section id="ensemble">' in html
    for run in runs:
        assert str(run.path) in html
    assert json.loads((ensemble.path / "metrics.json").read_text())["ensemble"]["method"] == "mean"
