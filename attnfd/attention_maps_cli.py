"""``python analysis/attention_maps.py``: its arguments and paths are checked here, before
``attnfd.attention_maps`` imports torch, so a typo is reported at once."""

from __future__ import annotations

from attnfd.arguments import OneLineParser, fail, integer
from attnfd.errors import ConfigError
from attnfd.paths import checkpoint_files, folder_problem


def main(argv: list[str] | None = None) -> None:
    parser = OneLineParser(
        prog="attention_maps.py",
        description="Raw and CBAM-refined feature maps of teacher and student at each distilled tap, for a few "
                    "validation images, as one PNG grid (the paper's Fig. 1).")
    parser.add_argument("--checkpoint", required=True,
                        help="an AttnFD student: its model.pt or state.pt, its run folder, or a study trial's folder")
    parser.add_argument("--teacher", default=None, help="the teacher's model.pt (default: the one the run used)")
    parser.add_argument("--images", type=integer, default=4, help="validation images, one row each (default 4)")
    parser.add_argument("--size", type=integer, default=96, help="pixels per picture (default 96)")
    parser.add_argument("--out", default=None, help="the PNG to write (default: attention_maps.png beside the model)")
    parser.add_argument("--device", default="cpu", help="cpu or cuda[:N]")
    args = parser.parse_args(argv)
    try:
        if args.images < 1 or args.size < 8:
            raise ConfigError(f"need at least one image and a cell size >= 8 (got {args.images}, {args.size})")
        checkpoint_files(args.checkpoint, what="--checkpoint")
        if args.teacher is not None:
            checkpoint_files(args.teacher, what="--teacher")
        if args.out is not None:
            from pathlib import Path

            problem = folder_problem(Path(args.out).expanduser().parent)
            if problem or Path(args.out).is_dir():
                raise ConfigError(f"--out: {problem or f'{args.out} is a folder; give a .png file'}")
        if args.device not in ("cpu", "cuda") and not args.device.startswith("cuda:"):
            raise ConfigError(f"--device must be cpu or cuda[:N], got {args.device!r}")
        from attnfd.attention_maps import attention_grid
        from attnfd.trainer import resolve_device

        path = attention_grid(args.checkpoint, args.out, args.images, args.size, args.teacher,
                              str(resolve_device(args.device)))
    except (ConfigError, FileNotFoundError) as err:
        fail(str(err))
    print(f"wrote {path}")
