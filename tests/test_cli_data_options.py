"""`fitclass doctor` and `fitclass auto` declare their shared data options once
(`cli/data_options.py`): both --help pages list them in the same words."""

from __future__ import annotations

import re
from collections.abc import Callable

from fitclass.cli.data_options import columns

Cli = Callable[..., tuple[int, str, str]]
SHARED = ("--text", "--label", "--valid")


def option_help(page: str, name: str) -> str:
    """An option's help text from a rich --help page (borders and wrapping removed)."""
    lines = [line.strip(" │╭╮╰╯─") for line in page.splitlines()]
    found, help_text = False, []
    for line in lines:
        if re.match(rf"^{re.escape(name)}\b", line):
            found, help_text = True, [line[len(name):]]
        elif found and line.startswith("-"):
            break
        elif found:
            help_text.append(line)
    return " ".join(" ".join(help_text).split())


def test_doctor_and_auto_help_show_the_same_data_options(cli_main: Cli,
                                                         monkeypatch) -> None:
    monkeypatch.setenv("COLUMNS", "200")
    pages = {}
    for command in ("doctor", "auto"):
        code, out, _ = cli_main(command, "--help")
        assert code == 0 and "DATA" in out
        pages[command] = out
    for name in SHARED:
        doctor_help = option_help(pages["doctor"], name)
        assert doctor_help and doctor_help == option_help(pages["auto"], name), name
    assert "--task" in pages["doctor"] and "--time" in pages["auto"]
    assert "folder of class folders of images" in pages["doctor"]


def test_repeated_columns_reach_the_api_as_one_name_or_a_list() -> None:
    assert columns(None) is None and columns([]) is None
    assert columns(["body"]) == "body"
    assert columns(["question", "answer"]) == ["question", "answer"]
