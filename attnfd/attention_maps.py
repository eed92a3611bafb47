"""Pictures like the paper's Fig. 1: raw and CBAM-refined feature maps of teacher and student.

For the first few validation images of an AttnFD student (a ``model.pt`` written by
``attnfd.trainer.fit``), one row per image: the image, its labels, then for each distilled tap
the teacher's raw and refined maps and the student's raw and refined maps. The student's CBAM
gates live in the distiller, saved in the run's ``checkpoint/state.pt``; the teacher's gates
are the ones its ``teacher_gate`` option names (the teacher's own learned gates, the
parameter-free CBAM, or the untrained one saved with the distiller). A map is drawn as the
mean absolute activation over its channels, scaled to its own range, in the Viridis colours.

    python analysis/attention_maps.py --checkpoint runs/student-resnet18-shapes-attnfd/model.pt
"""

from __future__ import annotations

import argparse
import sys
import typing
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image, ImageDraw
from torch import nn

from attnfd import checkpoint as ckpt
from attnfd.config import ConfigError
from attnfd.data import build_dataset
from attnfd.distill import build_distillers, parse_distill_spec
from attnfd.teachers import load_model, teacher_dir

KINDS = ("teacher raw", "teacher refined", "student raw", "student refined")
HEADER = 26


def _model_file(path: str | Path) -> Path:
    path = Path(path)
    path = path / ckpt.MODEL_FILE if path.is_dir() else path
    if not path.is_file():
        raise ConfigError(f"model file not found: {path}")
    return path


def load_run(model_path: str | Path, teacher_path: str | Path | None = None, device: str = "cpu"):
    """The student, its teacher, its AttnFD distiller (with the trained gates) and its config."""
    model_path = _model_file(model_path)
    student, config = load_model(model_path, device)
    if not config.distilling or "attnfd" not in dict(parse_distill_spec(config.distill)):
        raise ConfigError(f"{model_path} is not an AttnFD student (distill={config.distill!r}); "
                          "attention maps need its CBAM gates")
    state_file = model_path.parent / "checkpoint" / ckpt.STATE_FILE
    if not state_file.is_file():
        raise ConfigError(f"{state_file} not found: the student's CBAM gates are saved in the run's checkpoint")
    if teacher_path is None:
        teacher_path = config.teacher_checkpoint or teacher_dir(config)[0] / ckpt.MODEL_FILE
    if not Path(teacher_path).is_file():
        raise ConfigError(f"teacher model not found: {teacher_path}; pass --teacher PATH")
    teacher, _ = load_model(teacher_path, device)
    distillers = nn.ModuleDict({n: d for n, (d, _) in build_distillers(config.distill, student, teacher, config).items()})
    distillers.load_state_dict(ckpt.load(state_file)["distillers"])
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


def _labels(labels: torch.Tensor, size: int, palette) -> np.ndarray:
    table = np.zeros((256, 3), dtype=np.uint8)
    table[: len(palette)] = np.asarray(palette, dtype=np.uint8)
    table[255] = (255, 255, 255)
    near = F.interpolate(labels[:, None].float(), size=(size, size), mode="nearest")[:, 0].long().clamp(0, 255)
    return table[near.numpy()]


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
    out = Path(out) if out else _model_file(model_path).parent / "attention_maps.png"
    out.parent.mkdir(parents=True, exist_ok=True)
    picture.save(out)
    return out


def _fail(message: str) -> typing.NoReturn:
    print(f"attnfd: error: {message}", file=sys.stderr)
    raise SystemExit(2)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="attention_maps.py",
        description="Raw and CBAM-refined feature maps of teacher and student at each distilled tap, for a few "
                    "validation images, as one PNG grid (the paper's Fig. 1).")
    parser.add_argument("--checkpoint", required=True, help="an AttnFD student's model.pt (or its run folder)")
    parser.add_argument("--teacher", default=None, help="the teacher's model.pt (default: the one the run used)")
    parser.add_argument("--images", type=int, default=4, help="validation images, one row each (default 4)")
    parser.add_argument("--size", type=int, default=96, help="pixels per picture (default 96)")
    parser.add_argument("--out", default=None, help="the PNG to write (default: attention_maps.png beside the model)")
    parser.add_argument("--device", default="cpu", help="cpu or cuda[:N]")
    args = parser.parse_args(argv)
    try:
        from attnfd.trainer import resolve_device

        path = attention_grid(args.checkpoint, args.out, args.images, args.size, args.teacher,
                              str(resolve_device(args.device)))
    except (ConfigError, FileNotFoundError) as err:
        _fail(str(err))
    print(f"wrote {path}")


__all__ = ["attention_grid", "feature_maps", "load_run", "main"]
