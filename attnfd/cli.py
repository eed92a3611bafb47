"""``attnfd train`` and ``attnfd evaluate``.

Every field of ``TrainConfig`` is a flag of ``attnfd train`` (``--alpha-schedule cosine``);
unset flags take the data set's recipe. Bad input ends the program with one line on stderr
and exit status 2.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import typing
from pathlib import Path

from attnfd.config import ConfigError, TrainConfig

HELP = {
    "role": "teacher or student",
    "dataset": "shapes (built in), voc or cityscapes",
    "backbone": "resnet18, resnet34, resnet50, resnet101 or mobilenet_v2 (default: resnet101 teacher, resnet18 student)",
    "distill": "distillation method(s), e.g. attnfd or attnfd:1,kd:0.5; none trains the student alone",
    "distill_options": "per-method options, e.g. kd.temperature=4,cirkd.memory_pixel=0.05 (see README)",
    "layers": "comma-separated taps to distil: backbone,encoder,decoder",
    "alpha": "global distillation weight (default: AttnFD's 1 for VOC, 10 for Cityscapes when attnfd is used, else 1)",
    "alpha_schedule": "constant, linear, cosine or step (decay after --alpha-decay-start)",
    "teacher_gate": "learned (paper), parameter_free or untrained (official code)",
    "norm": "channel (paper eq. 5) or tensor (official code)",
    "tap_relu": "pre (paper) or post (official code for encoder and decoder)",
    "out_dir": "where the checkpoint and model.pt go (default: runs/<role>-<backbone>-<dataset>)",
    "resume": "a checkpoint folder or state.pt to continue from",
    "teacher_checkpoint": "a teacher model.pt to use instead of the cached one",
    "cache_dir": "where teachers are cached (default: $ATTNFD_CACHE or ~/.cache/attnfd)",
}


def _flag_type(field: dataclasses.Field):
    hint = str(field.type)
    if "bool" in hint:
        return lambda s: s.lower() in ("1", "true", "yes", "on")
    if "tuple[int" in hint:
        return lambda s: tuple(int(v) for v in s.split(","))
    if "int" in hint and "float" not in hint:
        return int
    if "float" in hint:
        return float
    if field.name == "image_size":
        return lambda s: tuple(int(v) for v in s.split("x")) if "x" in s else int(s)
    return str


def _train_parser(sub) -> argparse.ArgumentParser:
    parser = sub.add_parser("train", help="train a teacher or a student (optionally distilled)",
                            description="Train a DeepLabV3+ teacher or student. Unset options take the data set's recipe.")
    for field in dataclasses.fields(TrainConfig):
        parser.add_argument("--" + field.name.replace("_", "-"), dest=field.name, type=_flag_type(field),
                            default=None, help=HELP.get(field.name))
    return parser


def _fail(message: str) -> typing.NoReturn:
    print(f"attnfd: error: {message}", file=sys.stderr)
    raise SystemExit(2)


def _train(args: argparse.Namespace) -> None:
    values = {k: v for k, v in vars(args).items() if k not in ("command",) and v is not None}
    if values.get("distill", "").lower() in ("none", ""):
        values.pop("distill", None)
    config = TrainConfig.from_dict(values)
    if config.out_dir is None:
        suffix = f"-{config.distill.replace(':', '').replace(',', '+')}" if config.distilling else ""
        config = dataclasses.replace(config, out_dir=f"runs/{config.role}-{config.backbone}-{config.dataset}{suffix}")
    from attnfd.trainer import fit

    def report(row: dict, checkpoint_dir: str) -> None:
        shown = {k: round(v, 4) for k, v in row.items() if isinstance(v, float)}
        print(json.dumps({"epoch": row["epoch"], **shown}), flush=True)

    fit(config, report)
    print(f"model written to {Path(config.out_dir) / 'model.pt'}")


def _evaluate(args: argparse.Namespace) -> None:
    from attnfd.data import build_dataset
    from attnfd.teachers import load_model
    from attnfd.trainer import _loader, evaluate, resolve_device

    if not Path(args.checkpoint).is_file():
        _fail(f"checkpoint not found: {args.checkpoint}")
    device = resolve_device(args.device)
    model, config = load_model(args.checkpoint, device)
    if args.data_root:
        config = dataclasses.replace(config, data_root=args.data_root)
    metrics = evaluate(model, _loader(build_dataset(config, "val"), config, device, train=False),
                       config.num_classes, device)
    print(json.dumps({"checkpoint": args.checkpoint, "dataset": config.dataset, **metrics}))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="attnfd", description="Attention-guided feature distillation for segmentation")
    sub = parser.add_subparsers(dest="command", required=True)
    _train_parser(sub)
    ev = sub.add_parser("evaluate", help="evaluate a model.pt on its data set's validation split",
                        description="Single-scale evaluation of a trained model on the full validation split.")
    ev.add_argument("--checkpoint", required=True, help="a model.pt written by attnfd train")
    ev.add_argument("--data-root", default=None, help="override the data root stored with the model")
    ev.add_argument("--device", default="auto")
    args = parser.parse_args(argv)
    try:
        (_train if args.command == "train" else _evaluate)(args)
    except (ConfigError, FileNotFoundError) as err:
        _fail(str(err))
    except KeyboardInterrupt:
        _fail("interrupted; continue with --resume <out_dir>/checkpoint")


if __name__ == "__main__":
    main()
