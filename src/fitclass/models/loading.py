"""Reading a saved model folder back without trusting it: every file a loader needs is
checked to be there and readable first, so a truncated or missing file is a `RunError`
naming it and what to do, never a traceback from safetensors, torch or transformers."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from safetensors import SafetensorError

from fitclass import files
from fitclass.errors import RunError
from fitclass.models.base import MODEL_INFO

if TYPE_CHECKING:
    from torch import nn

    from fitclass.data.image_io import Preprocess

#: Largest image side a saved preprocessor config may ask for (a hostile one could ask for
#: a 10^5-pixel side and exhaust memory on the first prediction).
MAX_IMAGE_SIDE = 4096
#: The torch models' weights file.
WEIGHTS = "model.safetensors"


def model_info_path(model_dir: Path) -> Path:
    """The `fitclass_model.json` of `model_dir`, which must be there."""
    if not model_dir.is_dir():
        raise files.damaged(model_dir, "is missing (the saved model folder)")
    path = model_dir / MODEL_INFO
    if not path.is_file():
        raise RunError(f"{path} is missing: {model_dir} is not a saved fitclass model; if it "
                       f"is a run's model folder, {files.DAMAGED}")
    return path


def read_model_info(model_dir: Path, required: dict[str, type | tuple[type, ...]] | None = None
                    ) -> dict[str, Any]:
    """`fitclass_model.json`: its `kind`, its `class_names` and any `required` typed keys."""
    path = model_info_path(model_dir)
    info = files.read_json_object(path, {"kind": str, "class_names": list, **(required or {})})
    files.check_class_names(path, info["class_names"], "class_names")
    return info


def require_files(model_dir: Path, *names: str) -> None:
    """Each of `names` is a file in `model_dir`."""
    for name in names:
        if not (model_dir / name).is_file():
            raise files.damaged(model_dir / name, "is missing")


def load_weights(module: nn.Module, path: Path) -> None:
    """Load a safetensors state dict into `module`, naming the file on any failure."""
    from safetensors.torch import load_model

    if not path.is_file():
        raise files.damaged(path, "is missing")
    try:
        load_model(module, str(path))
    except SafetensorError as error:
        raise files.damaged(path, f"is not a readable safetensors file ({error}; "
                                   f"{path.stat().st_size} bytes)") from None
    except RuntimeError as error:  # missing, unexpected or wrongly shaped tensors
        first = str(error).strip().splitlines()[0][:300]
        raise files.damaged(path, f"does not fit the saved architecture ({first})") from None


def checked_preprocess(preprocess: Preprocess, model_dir: Path) -> Preprocess:
    """A saved image preprocessing that is safe to run: a sane side, finite non-zero std."""
    import math

    path = model_dir / "preprocessor_config.json"
    if not 1 <= preprocess.size <= MAX_IMAGE_SIDE:
        raise files.damaged(path, f"asks for {preprocess.size}-pixel images; expected 1 to "
                                   f"{MAX_IMAGE_SIDE}")
    values = (*preprocess.mean, *preprocess.std, preprocess.crop_pct)
    if not all(math.isfinite(v) for v in values) or min(preprocess.std) <= 0:
        raise files.damaged(path, f"has image_mean {preprocess.mean}, image_std "
                                   f"{preprocess.std}, crop_pct {preprocess.crop_pct}; expected "
                                   f"finite values and a positive std")
    if not 0 < preprocess.crop_pct <= 1:
        raise files.damaged(path, f"has crop_pct {preprocess.crop_pct}; expected (0, 1]")
    return preprocess


def load_failure(model_dir: Path, kind: str, error: Exception) -> RunError:
    """What any other failure while loading becomes: the folder, the kind and the cause."""
    return files.damaged(model_dir, f"could not be loaded as a {kind} model "
                                     f"({type(error).__name__}: {error})")
