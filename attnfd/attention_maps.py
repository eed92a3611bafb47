"""Pictures like the paper's Fig. 1: raw and CBAM-refined feature maps of teacher and student.

For the first few validation images of an AttnFD student (a ``model.pt`` written by
``attnfd.trainer.fit``), one row per image: the image, its labels, then for each distilled tap
the teacher's raw and refined maps and the student's raw and refined maps. The student's CBAM
gates live in the distiller, saved in the run's ``checkpoint/state.pt`` (so the student may be
given as its ``model.pt``, that ``state.pt``, the run folder or a study trial's folder); the teacher's gates
are the ones its ``teacher_gate`` option names (the teacher's own learned gates, the
parameter-free CBAM, or the untrained one saved with the distiller). A map is drawn as the
mean absolute activation over its channels, scaled to its own range, in the Viridis colours;
under the grid, a colour bar says so and a legend names the label pictures' classes.

    python analysis/attention_maps.py --checkpoint runs/student-resnet18-shapes-attnfd-<hash>/model.pt
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image, ImageDraw
from torch import nn

from attnfd import checkpoint as ckpt
from attnfd.data import build_dataset
from attnfd.distill import build_distillers
from attnfd.distill.spec import method_names
from attnfd.errors import ConfigError
from attnfd.metrics import IGNORE_INDEX
from attnfd.model_files import load_model, teacher_dir
from attnfd.paths import checkpoint_files

KINDS = ("teacher raw", "teacher refined", "student raw", "student refined")
HEADER = 26
# the key under the grid: a line of text or swatches, a swatch, the colour bar's length
KEY_LINE, SWATCH, BAR = 16, 10, 160
MAPS_NOTE = "maps: mean |activation| over channels, each scaled to its own range:"


def _state_file(path: str | Path) -> Path:
    """The state.pt that holds the student and its distiller's gates: the file given, a
    ``model.pt``'s run checkpoint, or a run's or trial's (newest) checkpoint."""
    first = checkpoint_files(path, want="state", what="--checkpoint")[0]
    if first.name != ckpt.MODEL_FILE:
        return first
    state_file = first.parent / "checkpoint" / ckpt.STATE_FILE
    if not state_file.is_file():
        raise ConfigError(f"{state_file} not found: the student's CBAM gates are saved in the run's checkpoint, "
                          "not in its model.pt")
    return state_file


def load_run(model_path: str | Path, teacher_path: str | Path | None = None, device: str = "cpu"):
    """The student, its teacher, its AttnFD distiller (with the trained gates) and its config."""
    state_file = _state_file(model_path)
    student, config = load_model(state_file, device)
    if not config.distilling or "attnfd" not in method_names(config.distill):
        raise ConfigError(f"{model_path} is not an AttnFD student (distill={config.distill!r}); "
                          "attention maps need its CBAM gates")
    if teacher_path is None:
        teacher_path = config.teacher_checkpoint or teacher_dir(config)[0] / ckpt.MODEL_FILE
        if not Path(teacher_path).is_file():
            raise ConfigError(f"teacher model not found: {teacher_path}; pass --teacher PATH")
    teacher_path = checkpoint_files(teacher_path, what="--teacher")[0]
    teacher, _ = load_model(teacher_path, device)
    distillers = nn.ModuleDict({n: d for n, (d, _) in build_distillers(config, student, teacher).items()})
    try:
        distillers.load_state_dict(ckpt.load(state_file, needs=("distillers",))["distillers"])
    except RuntimeError as err:
        raise ckpt.CheckpointError(f"{state_file}: its distiller does not fit the teacher {teacher_path}: "
                                   f"{ckpt.first_line(err)}") from None
    distillers.to(device)
    for module in (student, teacher, distillers):
        module.eval()
    return student, teacher, distillers["attnfd"], config


@torch.inference_mode()
def feature_maps(student: nn.Module, teacher: nn.Module, distiller, images: torch.Tensor) -> dict[tuple[str, str], torch.Tensor]:
    """``{(tap, kind): N x H x W}``: each map's mean absolute activation over its channels."""
    _, s_taps = student(images)
    _, t_taps = teacher(images)
    maps = {}
    for tap in distiller.layers:
        for kind, x in distiller.refined(tap, s_taps[tap], t_taps[tap]).items():
            maps[(tap, kind)] = x.float().abs().mean(dim=1)
    return maps


def _viridis() -> np.ndarray:
    from plotly.colors import sample_colorscale, unlabel_rgb

    return np.array([unlabel_rgb(c) for c in sample_colorscale("Viridis", list(np.linspace(0, 1, 256)))], dtype=np.uint8)


def _colour(maps: torch.Tensor, size: int, lut: np.ndarray) -> np.ndarray:
    """N x H x W maps, each scaled to its own range, as N x size x size x 3 colours."""
    up = F.interpolate(maps[:, None], size=(size, size), mode="bilinear", align_corners=False)[:, 0]
    low = up.flatten(1).amin(1)[:, None, None]
    high = up.flatten(1).amax(1)[:, None, None]
    scaled = ((up - low) / (high - low).clamp_min(1e-12)).clamp(0, 1)
    return lut[(scaled * 255).round().long().numpy()]


def _picture(images: torch.Tensor, size: int) -> np.ndarray:
    """Normalised images back to 0-255 (each scaled to its own range)."""
    up = F.interpolate(images.float(), size=(size, size), mode="bilinear", align_corners=False)
    low = up.flatten(1).amin(1)[:, None, None, None]
    high = up.flatten(1).amax(1)[:, None, None, None]
    return (255 * (up - low) / (high - low).clamp_min(1e-12)).permute(0, 2, 3, 1).round().byte().numpy()


def _label_colours(palette) -> np.ndarray:
    table = np.zeros((256, 3), dtype=np.uint8)
    table[: len(palette)] = np.asarray(palette, dtype=np.uint8)
    table[IGNORE_INDEX] = (255, 255, 255)
    return table


def _labels(labels: torch.Tensor, size: int, palette) -> np.ndarray:
    near = F.interpolate(labels[:, None].float(), size=(size, size), mode="nearest")[:, 0].long().clamp(0, 255)
    return _label_colours(palette)[near.numpy()]


def _flow(draw: ImageDraw.ImageDraw, items: list[tuple], width: int) -> list[tuple[int, int, tuple]]:
    """Items laid out left to right, a new line where the next one would pass ``width``: (x, y, item)
    each. An item is ("text", words), ("swatch", colour, name) or ("bar",), the colour bar between
    "low" and "high"."""
    placed, x, y = [], 2, 0
    for item in items:
        kind = item[0]
        if kind == "text":
            wide = draw.textlength(item[1])
        elif kind == "swatch":
            wide = SWATCH + 4 + draw.textlength(item[2])
        else:
            wide = draw.textlength("low high") + 8 + BAR
        if x > 2 and x + wide > width:
            x, y = 2, y + KEY_LINE
        placed.append((x, y, item))
        # words a space apart, a legend's entries further
        x += wide + (10 if kind == "swatch" else draw.textlength(" "))
    return placed


def _key(width: int, lut: np.ndarray, classes, palette, shown: np.ndarray) -> Image.Image:
    """What the colours mean, under the grid: the maps' colour bar, then a swatch per class the
    label pictures show (with the ignore label where it shows)."""
    colours = _label_colours(palette)
    present = [int(c) for c in np.unique(shown)]
    entries = [("swatch", tuple(int(v) for v in colours[c]),
                "ignore" if c == IGNORE_INDEX else (classes[c] if c < len(classes) else f"class {c}")) for c in present]
    scratch = ImageDraw.Draw(Image.new("RGB", (1, 1)))
    maps = _flow(scratch, [("text", w) for w in MAPS_NOTE.split()] + [("bar",)], width)
    labels = _flow(scratch, [("text", "labels:"), *entries], width)
    top = maps[-1][1] + KEY_LINE + 4
    picture = Image.new("RGB", (width, top + labels[-1][1] + KEY_LINE + 4), (255, 255, 255))
    draw = ImageDraw.Draw(picture)
    for x, y, item in maps + [(x, top + y, item) for x, y, item in labels]:
        if item[0] == "text":
            draw.text((x, y + 2), item[1], fill=(0, 0, 0))
        elif item[0] == "bar":
            draw.text((x, y + 2), "low", fill=(0, 0, 0))
            x += draw.textlength("low") + 4
            ramp = lut[np.linspace(0, len(lut) - 1, BAR).round().astype(int)]
            picture.paste(Image.fromarray(np.repeat(ramp[None], SWATCH, axis=0)), (int(x), y + 3))
            draw.text((x + BAR + 4, y + 2), "high", fill=(0, 0, 0))
        else:
            # a grey edge, so black and white swatches show on the white key
            draw.rectangle((x, y + 3, x + SWATCH - 1, y + 3 + SWATCH - 1), fill=item[1], outline=(128, 128, 128))
            draw.text((x + SWATCH + 4, y + 2), item[2], fill=(0, 0, 0))
    return picture


def attention_grid(model_path: str | Path, out: str | Path | None = None, images: int = 4, size: int = 96,
                   teacher_path: str | Path | None = None, device: str = "cpu") -> Path:
    """Write the picture grid as a PNG (default: ``attention_maps.png`` beside the model)."""
    if images < 1 or size < 8:
        raise ConfigError(f"need at least one image and a cell size >= 8 (got {images}, {size})")
    student, teacher, distiller, config = load_run(model_path, teacher_path, device)
    dataset = build_dataset(config, "val")
    count = min(images, len(dataset))
    batch = [dataset[i] for i in range(count)]
    x = torch.stack([b[0] for b in batch]).to(device)
    y = torch.stack([b[1] for b in batch])
    maps = feature_maps(student, teacher, distiller, x)
    lut = _viridis()
    columns = [("image", _picture(x.cpu(), size)),
               ("labels", _labels(y, size, getattr(dataset, "palette", [(0, 0, 0)])))]
    columns += [(f"{tap}: {kind}", _colour(maps[(tap, kind)].cpu(), size, lut)) for tap in distiller.layers for kind in KINDS]
    grid = np.full((HEADER + count * size, len(columns) * size, 3), 255, dtype=np.uint8)
    for c, (_, cells) in enumerate(columns):
        for r in range(count):
            grid[HEADER + r * size: HEADER + (r + 1) * size, c * size: (c + 1) * size] = cells[r]
    picture = Image.fromarray(grid)
    draw = ImageDraw.Draw(picture)
    for c, (title, _) in enumerate(columns):
        # two lines, "decoder" over "student refined", shortened to "S refined" where narrow
        tap, _, kind = title.partition(": ")
        if kind and draw.textlength(kind) > size - 4:
            kind = kind.replace("teacher", "T").replace("student", "S")
        draw.text((c * size + 2, 1), tap, fill=(0, 0, 0))
        if kind:
            draw.text((c * size + 2, HEADER // 2 + 1), kind, fill=(0, 0, 0))
    key = _key(picture.width, lut, getattr(dataset, "classes", ()), getattr(dataset, "palette", [(0, 0, 0)]),
               y.numpy().clip(0, IGNORE_INDEX))
    framed = Image.new("RGB", (picture.width, picture.height + key.height), (255, 255, 255))
    framed.paste(picture, (0, 0))
    framed.paste(key, (0, picture.height))
    picture = framed
    out = Path(out) if out else _output_folder(model_path) / "attention_maps.png"
    out.parent.mkdir(parents=True, exist_ok=True)
    picture.save(out)
    return out


def _output_folder(path: str | Path) -> Path:
    """Beside the model: a run folder itself, the run folder of its files."""
    path = Path(path)
    if path.is_dir():
        return path
    return path.parent.parent if path.parent.name == "checkpoint" else path.parent


__all__ = ["attention_grid", "feature_maps", "load_run"]
