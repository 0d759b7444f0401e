"""Shared fixtures: a tiny BERT folder, a small learnable dataset, and table writers.

Everything runs offline on CPU. Torch is pinned to one thread: the models here are tiny, and
with two cores shared with other processes, OpenMP barriers cost far more than they save.
"""

from __future__ import annotations

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("OMP_NUM_THREADS", "1")

import json
import random
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import torch
from PIL import Image

torch.set_num_threads(1)

#: Keywords that decide the class; every row carries two of its class's keywords.
KEYWORDS = {
    "sports": ["football", "goal", "match", "team", "score", "coach"],
    "tech": ["computer", "software", "laptop", "code", "internet", "server"],
    "food": ["pizza", "recipe", "cheese", "soup", "bread", "kitchen"],
}
#: Class-neutral words every class draws its filler from.
FILLER = ["today", "i", "read", "about", "the", "a", "new", "story", "we", "talked",
          "yesterday", "my", "friend", "likes", "this", "week", "was", "really", "good", "bad",
          "people", "city", "news", "old", "big", "small", "very", "and", "with", "after"]
#: Imbalanced class sizes of the standard synthetic dataset (120 rows).
COUNTS = {"sports": 60, "tech": 40, "food": 20}
CLASSES = sorted(COUNTS)
#: Extra text for the tokenizer, so its vocabulary is a few hundred entries.
EXTRA_CORPUS = (
    "the quick brown fox jumps over the lazy dog while a curious cat watches from the window "
    "morning evening weather rain sunshine holiday travel airport station museum library "
    "garden river mountain forest ocean island village market festival concert theatre "
    "doctor teacher student engineer artist writer singer driver farmer pilot nurse lawyer "
    "monday tuesday wednesday thursday friday saturday sunday january february march april "
    "supercalifragilistic extraordinary internationalisation responsibilities "
    "one two three four five six seven eight nine ten hundred thousand million"
)


def make_rows(counts: dict[str, int] | None = None, seed: int = 0,
              words: int = 5) -> list[dict[str, str]]:
    """Unique rows `id, text, label`: `words` filler words plus two class keywords."""
    rng = random.Random(seed)
    rows: list[dict[str, str]] = []
    seen: set[str] = set()
    for label, n in (counts or COUNTS).items():
        made = 0
        while made < n:
            tokens = rng.sample(FILLER, words) + rng.sample(KEYWORDS[label], 2)
            rng.shuffle(tokens)
            text = " ".join(tokens)
            if text in seen:
                continue
            seen.add(text)
            rows.append({"text": text, "label": label})
            made += 1
    rng.shuffle(rows)
    return [{"id": f"r{i:03d}", **row} for i, row in enumerate(rows)]


def write_table(rows: list[dict[str, Any]] | pd.DataFrame, path: Path) -> Path:
    """Write rows as CSV, TSV (.tsv/.tab/.txt), JSON lines (.jsonl/.ndjson/.json) or Parquet."""
    frame = rows if isinstance(rows, pd.DataFrame) else pd.DataFrame(rows)
    path.parent.mkdir(parents=True, exist_ok=True)
    suffix = path.suffix.lower()
    if suffix == ".csv":
        frame.to_csv(path, index=False)
    elif suffix in (".tsv", ".tab", ".txt"):
        frame.to_csv(path, index=False, sep="\t")
    elif suffix in (".jsonl", ".ndjson", ".json"):
        with path.open("w", encoding="utf-8") as handle:
            for record in frame.to_dict("records"):
                handle.write(json.dumps(record, ensure_ascii=False) + "\n")
    elif suffix in (".parquet", ".pq"):
        frame.to_parquet(path, index=False)
    else:
        raise ValueError(f"no writer for {suffix}")
    return path


def _build_tiny_bert(folder: Path) -> Path:
    from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, processors
    from tokenizers.trainers import WordPieceTrainer
    from transformers import BertConfig, BertModel, BertTokenizerFast

    specials = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    corpus = [row["text"] for row in make_rows(seed=123)]
    corpus += [" ".join(words) for words in KEYWORDS.values()] + [" ".join(FILLER), EXTRA_CORPUS]
    backend = Tokenizer(models.WordPiece(unk_token="[UNK]"))
    backend.normalizer = normalizers.BertNormalizer(lowercase=True)
    backend.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    backend.train_from_iterator(corpus, WordPieceTrainer(vocab_size=400,
                                                         special_tokens=specials))
    cls_id, sep_id = backend.token_to_id("[CLS]"), backend.token_to_id("[SEP]")
    backend.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]", pair="[CLS] $A [SEP] $B:1 [SEP]:1",
        special_tokens=[("[CLS]", cls_id), ("[SEP]", sep_id)])
    backend.decoder = decoders.WordPiece()
    tokenizer = BertTokenizerFast(tokenizer_object=backend, unk_token="[UNK]",
                                  pad_token="[PAD]", cls_token="[CLS]", sep_token="[SEP]",
                                  mask_token="[MASK]")
    torch.manual_seed(0)
    config = BertConfig(hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                        intermediate_size=37, vocab_size=len(tokenizer),
                        max_position_embeddings=128)
    BertModel(config).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


@pytest.fixture(scope="session")
def tiny_bert_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A randomly initialised 2-layer, 32-wide BERT with its own WordPiece tokenizer."""
    return _build_tiny_bert(tmp_path_factory.mktemp("tiny-bert"))


@pytest.fixture(scope="session")
def synthetic_rows() -> list[dict[str, str]]:
    """120 rows, 3 classes (60/40/20) told apart by keywords."""
    return make_rows()


@pytest.fixture(scope="session")
def train_csv(tmp_path_factory: pytest.TempPathFactory,
              synthetic_rows: list[dict[str, str]]) -> Path:
    """The synthetic dataset as CSV with columns id, text, label."""
    return write_table(synthetic_rows, tmp_path_factory.mktemp("data") / "train.csv")


@pytest.fixture(scope="session")
def table_writer() -> Callable[[list[dict[str, Any]] | pd.DataFrame, Path], Path]:
    """`write(rows, path)`: the format follows the extension."""
    return write_table


@pytest.fixture(scope="session")
def rows_maker() -> Callable[..., list[dict[str, str]]]:
    """`make(counts=None, seed=0, words=5)`: more synthetic rows."""
    return make_rows


@pytest.fixture(scope="session")
def recipe_for(tiny_bert_dir: Path) -> Callable[..., dict[str, Any]]:
    """`recipe_for(backbone, train_file, **sections)`: a fast recipe dict.

    `backbone` is "tiny_bert" (the fixture folder), "tfidf" or any backbone name; keyword
    sections (`data`, `model`, `train`, ...) are merged over the fast defaults.
    """

    def build(backbone: str, train_file: Path, /, **sections: Any) -> dict[str, Any]:
        recipe: dict[str, Any] = {
            "data": {"train": str(train_file), "id": "id",
                     "split": {"valid_size": 0.25, "seed": 0}},
            "train": {"seed": 0},
        }
        if backbone == "tiny_bert":
            recipe["model"] = {"backbone": str(tiny_bert_dir), "max_length": 32,
                               "dropout": 0.0}
            recipe["train"].update({"epochs": 8, "batch_size": 8, "lr": 3e-3,
                                    "eval_batch_size": 64})
        else:
            recipe["model"] = {"backbone": backbone}
        for key, value in sections.items():
            if isinstance(value, dict) and isinstance(recipe.get(key), dict):
                recipe[key] = {**recipe[key], **value}
            else:
                recipe[key] = value
        return recipe

    return build


def make_pattern_image(label: str, seed: int, size: int = 16) -> Image.Image:
    """An RGB image whose pattern decides its class: stripes across, stripes down, or a
    checkerboard, with a random colour, phase and noise (so no two images are alike)."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:size, 0:size]
    phase = int(rng.integers(0, 4))
    wave = {"across": (y + phase) // 2 % 2, "down": (x + phase) // 2 % 2,
            "checks": ((x + phase) // 3 + (y + phase) // 3) % 2}[label]
    colour = rng.integers(60, 255, size=3)
    pixels = wave[..., None] * colour + rng.normal(0, 12, size=(size, size, 3))
    return Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8), mode="RGB")


def write_image_folder(root: Path, per_class: int, seed: int = 0,
                       size: int = 16) -> Path:
    """`root/<class>/<n>.png` for the classes across, down and checks."""
    for c, label in enumerate(IMAGE_CLASSES):
        (root / label).mkdir(parents=True, exist_ok=True)
        for n in range(per_class):
            make_pattern_image(label, seed * 100_000 + c * 1000 + n, size).save(
                root / label / f"{n:03d}.png")
    return root


#: Classes of the pattern images.
IMAGE_CLASSES = ("across", "checks", "down")


@pytest.fixture(scope="session")
def image_folder_writer() -> Callable[..., Path]:
    """`write(root, per_class, seed=0, size=16)`: class folders of pattern PNGs."""
    return write_image_folder


@pytest.fixture(scope="session")
def probe_texts() -> list[str]:
    """Texts the ONNX tests predict: one per class, a two-word row, and one longer than the
    tiny models' max_length (truncated)."""
    return ["football goal for the team today", "my laptop runs new software code",
            "pizza with cheese in the kitchen", "a story", "supercalifragilistic " * 12]


@pytest.fixture(scope="module")
def no_reports() -> Iterator[None]:
    """Training writes no report.html (matplotlib, about a second a run): report tests draw
    their own. Use with `pytestmark = pytest.mark.usefixtures("no_reports")`."""
    import fitclass.api

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(fitclass.api, "write_report_safely", lambda path, reporter: None)
        yield


@pytest.fixture
def cli_main(capsys: pytest.CaptureFixture[str],
        monkeypatch: pytest.MonkeyPatch) -> Callable[..., tuple[int, str, str]]:
    """`fitclass ...` run through `fitclass.cli.main` (what the console script calls) in this
    process, for paths that need no new interpreter; returns (exit code, stdout, stderr)."""
    from fitclass.cli import main

    def run(*args: str | Path) -> tuple[int, str, str]:
        monkeypatch.setattr(sys, "argv", ["fitclass", *map(str, args)])
        capsys.readouterr()
        with pytest.raises(SystemExit) as info:
            main()
        captured = capsys.readouterr()
        return int(info.value.code or 0), captured.out, captured.err

    return run


@pytest.fixture(scope="session", autouse=True)
def private_cache(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """Token and feature caches under a session folder, not the user's `~/.cache`: every
    text model training tokenises through the token cache. Tests that count cache hits set
    their own `FITCLASS_CACHE`."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("FITCLASS_CACHE", str(tmp_path_factory.mktemp("fitclass-cache")))
        yield


@pytest.fixture(scope="module")
def analyzer_runs(tmp_path_factory: pytest.TempPathFactory, train_csv: Path,
                  recipe_for: Callable[..., dict[str, Any]]) -> dict[str, Path]:
    """Two TF-IDF runs on one validation split (`char_wb` and `word` analyzers: TF-IDF
    ignores the seed) and one on another split (`other_split`): what the compare and
    interval tests score."""
    import fitclass

    root = tmp_path_factory.mktemp("analyzers")
    found = {}
    for analyzer in ("char_wb", "word"):
        recipe = recipe_for("tfidf", train_csv, model={"backbone": "tfidf",
                                                       "analyzer": analyzer})
        found[analyzer] = fitclass.train(recipe, out=root / analyzer).path
    other = recipe_for("tfidf", train_csv, data={"split": {"valid_size": 0.25, "seed": 1}})
    found["other_split"] = fitclass.train(other, out=root / "other_split").path
    return found
