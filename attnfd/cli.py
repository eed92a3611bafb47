"""``attnfd train``, ``attnfd evaluate``, ``attnfd convert`` and ``attnfd data check``.

Every field of ``TrainConfig`` is a flag of ``attnfd train`` (``--alpha-schedule cosine``);
unset flags take the data set's recipe. Bad input ends the program with one line on stderr
and exit status 2.
"""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import json
import math
import sys
from pathlib import Path

from attnfd.arguments import OneLineParser, fail, field_type, integer, spoken_list
from attnfd.config import ConfigError, TrainConfig
from attnfd.data.registry import DATASETS, file_dataset_names
from attnfd.paths import MODEL_FILE, STATE_FILE, checkpoint_files, folder_problem

HELP = {
    "role": "teacher or student",
    "dataset": f"shapes (built in) or a data set on disk: {spoken_list(file_dataset_names(), 'or')}",
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
    "out_dir": "where the checkpoint and model.pt go (default: runs/<role>-<backbone>-<dataset>[-<method>]-<hash of "
               "the config>); a folder that holds a run needs --resume or --overwrite",
    "resume": "what to continue from: a state.pt, a run folder, or a study trial's folder (its newest checkpoint)",
    "teacher_checkpoint": "a teacher (model.pt, state.pt or run folder) to use instead of the cached one",
    "cache_dir": "where teachers are cached (default: $ATTNFD_CACHE or ~/.cache/attnfd)",
    "threads": "torch threads (default: torch's, one per core). A study trial runs with --cpus-per-trial threads "
               "(1): the same config, seed and threads give the trial's numbers exactly",
    "data_root": "folder of a data set on disk (default: $ATTNFD_DATA/<dataset>); see attnfd data check",
}


def _train_parser(sub) -> argparse.ArgumentParser:
    parser = sub.add_parser("train", help="train a teacher or a student (optionally distilled)",
                            description="Train a DeepLabV3+ teacher or student. Unset options take the data set's recipe.")
    for field in dataclasses.fields(TrainConfig):
        parser.add_argument("--" + field.name.replace("_", "-"), dest=field.name, type=field_type(field),
                            default=None, help=HELP.get(field.name))
    parser.add_argument("--overwrite", action="store_true",
                        help="replace the run already in --out-dir (default: stop and say how to continue it)")
    return parser


# where a run goes or how it is placed; two runs equal on everything else train the same model
_PLACEMENT = ("out_dir", "resume", "cache_dir", "device", "workers", "threads")


def default_out_dir(config: TrainConfig) -> str:
    """``runs/<role>-<backbone>-<dataset>[-<method>]-<hash>``: the hash covers every field
    but the placement, so runs that differ in alpha, layers or seed get their own folders."""
    suffix = f"-{config.distill.replace(':', '').replace(',', '+')}" if config.distilling else ""
    content = {k: v for k, v in config.to_dict().items() if k not in _PLACEMENT}
    digest = hashlib.sha256(json.dumps(content, sort_keys=True, default=str).encode()).hexdigest()[:8]
    return f"runs/{config.role}-{config.backbone}-{config.dataset}{suffix}-{digest}"


def _check_out_dir(config: TrainConfig, overwrite: bool) -> None:
    """Stop before a run would replace another one's model.pt or checkpoint."""
    out = Path(config.out_dir).expanduser()
    problem = folder_problem(out)
    if problem:
        fail(f"--out-dir: {problem}")
    finished, started = (out / MODEL_FILE).is_file(), (out / "checkpoint" / STATE_FILE).is_file()
    if overwrite or not (finished or started):
        return
    if config.resume and Path(config.resume).resolve().is_relative_to(out.resolve()):
        return
    what = "a finished run (model.pt)" if finished else "an unfinished run (checkpoint/state.pt)"
    more = " with more --epochs" if finished else ""
    fail(f"{out} holds {what}; continue it with --resume {out / 'checkpoint'}{more}, replace it with --overwrite, "
          "or pick another --out-dir")


def _json_ready(value, digits: int | None = None):
    """A value JSON can hold: NaN/inf (a class absent from the labels, an epoch not
    evaluated) become null, which strict JSON readers accept."""
    if isinstance(value, float):
        return None if not math.isfinite(value) else round(value, digits) if digits is not None else value
    if isinstance(value, dict):
        return {k: _json_ready(v, digits) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_ready(v, digits) for v in value]
    return value


def _train(args: argparse.Namespace) -> None:
    overwrite = args.overwrite
    values = {k: v for k, v in vars(args).items() if k not in ("command", "overwrite") and v is not None}
    if values.get("distill", "").lower() in ("none", ""):
        values.pop("distill", None)
    config = TrainConfig.from_dict(values)
    if config.out_dir is None:
        config = dataclasses.replace(config, out_dir=default_out_dir(config))
    _check_out_dir(config, overwrite)
    from attnfd import checkpoint as ckpt
    from attnfd.model_files import saved_miou, teacher_dir
    from attnfd.progress import ProgressLog
    from attnfd.teachers import ensure_teacher
    from attnfd.trainer import NonFiniteLossError, fit

    teacher_line = None
    if config.distilling:
        # the teacher first, in its own words (cached, or trained now), so the summary can say which
        cached = config.teacher_checkpoint is not None or (teacher_dir(config)[0] / ckpt.MODEL_FILE).is_file()
        teacher_file = ensure_teacher(config)
        config = dataclasses.replace(config, teacher_checkpoint=str(teacher_file))
        origin = "given" if values.get("teacher_checkpoint") else "from the cache" if cached else "trained by this run"
        teacher_line = f"teacher {config.teacher_backbone}: val mIoU {saved_miou(teacher_file):.4f} ({origin}, {teacher_file})"
    label = f"{config.role} {config.backbone} on {config.dataset}" + (f" + {config.distill}" if config.distilling else "")
    try:
        last = fit(config, progress=ProgressLog(label))
    except NonFiniteLossError as err:
        fail(f"the run diverged: {err}; no model.pt was written", status=1)
    print(f"\n{label}: final val mIoU {last.get('miou', float('nan')):.4f} after {config.epochs} epochs")
    if teacher_line:
        print(teacher_line)
    print(f"model written to {Path(config.out_dir) / 'model.pt'}")


def _evaluate(args: argparse.Namespace) -> None:
    files = checkpoint_files(args.checkpoint)
    if args.device not in ("auto", "cpu", "cuda") and not args.device.startswith("cuda:"):
        fail(f"--device must be auto, cpu or cuda[:N], got {args.device!r}")
    from attnfd.data import build_dataset
    from attnfd.model_files import load_model
    from attnfd.trainer import _loader, evaluate, resolve_device

    device = resolve_device(args.device)
    model, config, path = load_model_first(files, device, load_model)
    if args.data_root:
        config = dataclasses.replace(config, data_root=args.data_root).resolved()
    metrics = evaluate(model, _loader(build_dataset(config, "val"), config, device, train=False),
                       config.num_classes, device)
    print(json.dumps(_json_ready({"checkpoint": str(path), "dataset": config.dataset, **metrics}), allow_nan=False))


def load_model_first(files: list[Path], device, load_model):
    """The first of ``files`` that loads; a newer one that does not is named on stderr."""
    for index, path in enumerate(files):
        try:
            model, config = load_model(path, device)
        except ConfigError as err:
            if index + 1 == len(files):
                raise
            print(f"attnfd: warning: {err}; trying {files[index + 1]}", file=sys.stderr)
            continue
        return model, config, path
    raise AssertionError("unreachable: checkpoint_files returns at least one file")


def _data_parser(sub) -> None:
    data = sub.add_parser("data", help="check (or download) an on-disk data set",
                          description=f"Work with the on-disk data sets ({', '.join(file_dataset_names())}).")
    actions = data.add_subparsers(dest="action", required=True)
    check = actions.add_parser(
        "check", help="walk a data set and report what would break a training run",
        description="Counts per split against the official release, pairs with a missing file, unreadable "
                    "files, labels that are not class indices or hold values outside the classes, image/label "
                    "size mismatches. Exit status 1 when something is wrong.")
    check.add_argument("--dataset", required=True, choices=file_dataset_names())
    check.add_argument("--root", "--data-root", dest="root", default=None,
                       help="the data set's folder (default: $ATTNFD_DATA/<dataset>)")
    check.add_argument("--quick", action="store_true",
                       help="folders, split files and counts only (what train checks)")
    check.add_argument("--partial", action="store_true", help="a count other than the official release's is fine")
    check.add_argument("--workers", type=integer, default=None, help="threads reading files (default: cores, at most 8)")
    check.add_argument("--download", action="store_true",
                       help=f"first fetch the release into --root from its public URLs "
                            f"({spoken_list(_downloadable())}; README, \"Real data\", says what each fetches)")


def _downloadable() -> list[str]:
    return [name for name, spec in DATASETS.items() if spec.download is not None]


def _data(args: argparse.Namespace) -> None:
    from attnfd.data import resolve_data_root
    from attnfd.data.check import full_check, quick_check

    if args.workers is not None and args.workers < 1:
        fail(f"--workers must be >= 1, got {args.workers}")
    spec = DATASETS[args.dataset]
    root = resolve_data_root(args.dataset, args.root)
    if args.download:
        if spec.download is None:
            fail(f"only {spoken_list(_downloadable())} can be downloaded; {spec.how_to_get}")
        spec.download(root)
    layout = spec.layout
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
    conv.add_argument("--dataset", default=None, help="the data set, e.g. voc or cityscapes (default: the one with the "
                                                      "checkpoint's number of classes)")
    conv.add_argument("--output-stride", type=int, default=16, choices=(8, 16))
    conv.add_argument("--role", default="teacher", choices=("teacher", "student"))


def _convert(args: argparse.Namespace) -> None:
    from attnfd.models.convert import ConversionError, convert_file

    out = args.out or str(Path(args.path).with_name(Path(args.path).name.split(".")[0] + ".model.pt"))
    try:
        written = convert_file(args.layout, args.path, out, dataset=args.dataset,
                               output_stride=args.output_stride, role=args.role)
    except ConversionError as err:
        fail(str(err))
    print(f"model written to {written}")


def main(argv: list[str] | None = None) -> None:
    parser = OneLineParser(prog="attnfd", description="Attention-guided feature distillation for segmentation")
    sub = parser.add_subparsers(dest="command", required=True)
    _train_parser(sub)
    ev = sub.add_parser("evaluate", help="evaluate a model.pt on its data set's validation split",
                        description="Single-scale evaluation of a trained model on the full validation split.")
    ev.add_argument("--checkpoint", required=True,
                    help="a model.pt or state.pt, a run folder, or a study trial's folder (its newest checkpoint)")
    ev.add_argument("--data-root", default=None, help="override the data root stored with the model")
    ev.add_argument("--device", default="auto")
    _data_parser(sub)
    _convert_parser(sub)
    args = parser.parse_args(argv)
    try:
        {"train": _train, "evaluate": _evaluate, "data": _data, "convert": _convert}[args.command](args)
    except (ConfigError, FileNotFoundError) as err:
        fail(str(err))
    except KeyboardInterrupt:
        fail("interrupted; continue with --resume <out_dir>/checkpoint")


if __name__ == "__main__":
    main()
