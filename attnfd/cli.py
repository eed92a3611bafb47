"""``attnfd train``, ``attnfd evaluate``, ``attnfd convert`` and ``attnfd data check``.

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
    "recipe": "paper (default) or official: the official AttnFD code's choices, each its own field "
              "(docs_official_recipe.md); fields given by flag win",
    "multi_grid": "true: a Bottleneck ResNet's layer4 dilates 1x, 2x, 4x (official code); false (default)",
    "mobilenet_dilation": "stage (default: features[14:18] dilated) or last_block (official: only the last block)",
    "fixed_padding": "true: MobileNetV2 blocks pad their input explicitly, as the official code",
    "align_corners": "bilinear upsampling with align_corners (official: true; default false)",
    "tap_gates_inline": "false: tap CBAMs held beside the forward path, not in it (official layout)",
    "ce_batch_average": "true: cross-entropy divided once more by the batch size (official code)",
    "lr_batch_reference": "scale lr by batch_size / this (official: 6 images per GPU)",
    "connector_schedule": "joint (default) or first_epoch (official: connectors alone in epoch 0, frozen after)",
    "teacher_mode": "eval (default) or train (official: BN batch statistics, dropout active)",
    "train_student_channel_mlp": "false: the student CBAMs' channel MLP stays at its init (official code)",
    "voc_train_split": "train_aug (default: VOC train + SBD when found) or train (official: 1,464 images)",
    "out_dir": "where the checkpoint and model.pt go (default: runs/<role>-<backbone>-<dataset>)",
    "resume": "a checkpoint folder or state.pt to continue from",
    "teacher_checkpoint": "a teacher model.pt to use instead of the cached one",
    "cache_dir": "where teachers are cached (default: $ATTNFD_CACHE or ~/.cache/attnfd)",
    "data_root": "folder of a voc or cityscapes copy (default: $ATTNFD_DATA/<dataset>); see attnfd data check",
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


def _data_parser(sub) -> None:
    data = sub.add_parser("data", help="check (or download) an on-disk data set",
                          description="Work with the on-disk data sets (voc, cityscapes).")
    actions = data.add_subparsers(dest="action", required=True)
    check = actions.add_parser(
        "check", help="walk a data set and report what would break a training run",
        description="Counts per split against the official release, pairs with a missing file, unreadable "
                    "files, labels that are not class indices or hold values outside the classes, image/label "
                    "size mismatches. Exit status 1 when something is wrong.")
    check.add_argument("--dataset", required=True, choices=("voc", "cityscapes"))
    check.add_argument("--root", "--data-root", dest="root", default=None,
                       help="the data set's folder (default: $ATTNFD_DATA/<dataset>)")
    check.add_argument("--quick", action="store_true",
                       help="folders, split files and counts only (what train checks)")
    check.add_argument("--partial", action="store_true", help="a count other than the official release's is fine")
    check.add_argument("--workers", type=int, default=None, help="threads reading files (default: cores, at most 8)")
    check.add_argument("--download", action="store_true",
                       help="voc only: first fetch VOC 2012 trainval and SBD into --root with torchvision")


def _data(args: argparse.Namespace) -> None:
    from attnfd.data import FILE_DATASETS, resolve_data_root
    from attnfd.data.check import full_check, quick_check

    root = resolve_data_root(args.dataset, args.root)
    if args.download:
        if args.dataset != "voc":
            _fail("only voc can be downloaded; Cityscapes needs an account on its website")
        from attnfd.data.voc import download

        download(root)
    layout = FILE_DATASETS[args.dataset]
    if args.quick:
        report = quick_check(layout, root, partial=args.partial)
    else:
        report = full_check(layout, root, partial=args.partial, workers=args.workers)
    print(report.render())
    if not report.ok:
        raise SystemExit(1)


def _convert_parser(sub) -> None:
    conv = sub.add_parser("convert", help="turn a checkpoint in another code's layout into an attnfd model.pt",
                          description="Map a checkpoint of the official AttnFD code (DeepLab with backbone., aspp., "
                                      "decoder. and its CBAMs; also clovaai/overhaul-distillation's Segmentation "
                                      "layout) into a model.pt for --teacher-checkpoint or attnfd evaluate. "
                                      "ResNet-18/34/50/101 and MobileNetV2 backbones.")
    conv.add_argument("path", help="the checkpoint (.pth / .pth.tar, {'state_dict': ...} or a bare state dict)")
    conv.add_argument("--from", dest="layout", required=True, choices=("official",), help="the key layout")
    conv.add_argument("--out", default=None, help="output model.pt or folder (default: beside PATH, <name>.model.pt)")
    conv.add_argument("--dataset", default=None, help="voc or cityscapes (default: from the number of classes)")
    conv.add_argument("--output-stride", type=int, default=16, choices=(8, 16))
    conv.add_argument("--role", default="teacher", choices=("teacher", "student"))


def _convert(args: argparse.Namespace) -> None:
    from attnfd.models.convert import ConversionError, convert_file

    out = args.out or str(Path(args.path).with_name(Path(args.path).name.split(".")[0] + ".model.pt"))
    try:
        written = convert_file(args.layout, args.path, out, dataset=args.dataset,
                               output_stride=args.output_stride, role=args.role)
    except ConversionError as err:
        _fail(str(err))
    print(f"model written to {written}")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="attnfd", description="Attention-guided feature distillation for segmentation")
    sub = parser.add_subparsers(dest="command", required=True)
    _train_parser(sub)
    ev = sub.add_parser("evaluate", help="evaluate a model.pt on its data set's validation split",
                        description="Single-scale evaluation of a trained model on the full validation split.")
    ev.add_argument("--checkpoint", required=True, help="a model.pt written by attnfd train")
    ev.add_argument("--data-root", default=None, help="override the data root stored with the model")
    ev.add_argument("--device", default="auto")
    _data_parser(sub)
    _convert_parser(sub)
    args = parser.parse_args(argv)
    try:
        {"train": _train, "evaluate": _evaluate, "data": _data, "convert": _convert}[args.command](args)
    except (ConfigError, FileNotFoundError) as err:
        _fail(str(err))
    except KeyboardInterrupt:
        _fail("interrupted; continue with --resume <out_dir>/checkpoint")


if __name__ == "__main__":
    main()
