"""``attnfd data check``: walk an on-disk data set before anyone spends GPU hours on it.

``quick_check`` looks at folders and split files only (seconds, run by the trainer at start);
``full_check`` also reads every image and label: unreadable files, labels that are not
class-index maps, label values outside the data set's range, image/label size mismatches.
"""

from __future__ import annotations

import os
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

from attnfd.data.folder import read_image
from attnfd.data.layout import LabelFormatError, Sample, SplitIndex
from attnfd.errors import ConfigError

# the splits a training run reads (a release may have more, e.g. CamVid's test)
TRAINING_SPLITS = ("train", "val")


@dataclass
class CheckReport:
    dataset: str
    root: Path
    summary: list[str] = field(default_factory=list)
    # kind of problem -> one line per occurrence
    problems: dict[str, list[str]] = field(default_factory=dict)
    # worth knowing but not wrong (e.g. a partial copy when partial copies are allowed)
    warnings: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    indexes: dict[str, SplitIndex] = field(default_factory=dict)

    def add(self, kind: str, detail: str) -> None:
        self.problems.setdefault(kind, []).append(detail)

    @property
    def ok(self) -> bool:
        return not self.problems

    @property
    def problem_count(self) -> int:
        return sum(len(v) for v in self.problems.values())

    def one_line(self) -> str:
        kind, details = next(iter(self.problems.items()))
        more = self.problem_count - 1
        return (f"{self.dataset} data at {self.root} is not usable: {kind}: {details[0]}"
                + (f" (and {more} more problem(s))" if more else "")
                + f"; run `attnfd data check --dataset {self.dataset} --root {self.root}`")

    def render(self, examples: int = 5) -> str:
        lines = [f"{self.dataset} at {self.root}"]
        lines += [f"  {line}" for line in self.summary]
        lines += [f"  note: {line}" for line in self.notes]
        lines += [f"  warning: {line}" for line in self.warnings]
        for kind, details in self.problems.items():
            lines.append(f"  PROBLEM {kind} ({len(details)}):")
            lines += [f"    {d}" for d in details[:examples]]
            if len(details) > examples:
                lines.append(f"    ... and {len(details) - examples} more")
        lines.append("OK" if self.ok else f"FAILED: {self.problem_count} problem(s)")
        return "\n".join(lines)


def quick_check(layout, root: str | Path, partial: bool = False,
                splits: tuple[str, ...] | None = None) -> CheckReport:
    """Folders, split files, pairs with a missing half, counts against the official release,
    for ``splits`` (default: every split of the release).

    With ``partial`` a count other than the official one is a warning, not a problem.
    """
    report = CheckReport(layout.name, Path(root))
    for split in splits or layout.splits:
        try:
            index = layout.index(Path(root), split)
        except ConfigError as err:
            # a wrong root breaks every split the same way: say it once
            if str(err) not in report.problems.get("layout", []):
                report.add("layout", str(err))
            continue
        report.indexes[split] = index
        report.notes += index.notes
        expected = layout.expected_counts.get(index.kind)
        found = len(index.samples)
        report.summary.append(f"{split}: {found} pairs ({index.kind}, official release: {expected})")
        for line in index.missing:
            report.add("missing pair", f"{split} {line}")
        if found == 0:
            report.add("empty split", f"{split}: no image/label pairs")
        elif expected is not None and found + len(index.missing) != expected:
            name = split if index.kind == split else f"{split} ({index.kind})"
            message = f"{name} lists {found + len(index.missing)} images, the official release {expected}"
            if partial:
                report.warnings.append(message)
            else:
                report.add("count", message + " (use --partial if this is on purpose)")
    found = list(report.indexes)
    for i, first in enumerate(found):
        ids = {s.id for s in report.indexes[first].samples}
        for second in found[i + 1:]:
            for sample_id in sorted(ids & {s.id for s in report.indexes[second].samples}):
                report.add(f"{first}/{second} overlap", f"{sample_id} is in both {first} and {second}")
    return report


def _first_line(err: BaseException) -> str:
    text = str(err).strip().splitlines()
    return text[0] if text else type(err).__name__


def inspect_sample(layout, sample: Sample) -> tuple[list[tuple[str, str]], tuple[int, int] | None]:
    """Read one pair the way training reads it: (kind, detail) for each thing wrong, and the
    image's height and width (None if it does not decode)."""
    problems: list[tuple[str, str]] = []
    image_hw = raw = None
    try:
        image_hw = tuple(read_image(sample.image).shape[-2:])
    except Exception as err:  # noqa: BLE001 (any decoder failure is the finding, whatever its type)
        problems.append(("unreadable image", f"{sample.image}: {_first_line(err)}"))
    try:
        raw = layout.read_raw_label(sample)
    except LabelFormatError as err:
        problems.append(("label is not class indices", str(err)))
    except Exception as err:  # noqa: BLE001
        problems.append(("unreadable label", f"{sample.label}: {_first_line(err)}"))
    if raw is not None:
        bad = np.unique(layout.bad_label_values(np.unique(raw)))
        if bad.size:
            shown = ", ".join(str(int(v)) for v in bad[:8])
            problems.append(("label values out of range", f"{sample.label}: {shown} (expected {layout.label_values})"))
        if image_hw is not None and tuple(raw.shape) != image_hw:
            sizes = f"image {image_hw[0]}x{image_hw[1]}, label {raw.shape[0]}x{raw.shape[1]}"
            problems.append(("size mismatch", f"{sample.id}: {sizes}"))
    return problems, image_hw


def full_check(layout, root: str | Path, partial: bool = False, workers: int | None = None) -> CheckReport:
    """``quick_check`` plus reading every pair of every split found."""
    report = quick_check(layout, root, partial)
    samples = [s for index in report.indexes.values() for s in index.samples]
    workers = workers or min(8, os.cpu_count() or 1)
    sizes: Counter = Counter()
    with ThreadPoolExecutor(max_workers=workers) as pool:
        results = pool.map(lambda s: inspect_sample(layout, s), samples)
        for problems, image_hw in tqdm(results, total=len(samples), desc="reading", disable=None):
            for kind, detail in problems:
                report.add(kind, detail)
            if image_hw is not None:
                sizes[image_hw] += 1
    if samples:
        report.summary.append(f"read {len(samples)} pairs")
    if sizes:
        # which release a copy is (CamVid at 360x480 or 720x960), or how varied its images are
        common = ", ".join(f"{h}x{w} ({n})" for (h, w), n in sizes.most_common(3))
        others = f" and {len(sizes) - 3} other sizes" if len(sizes) > 3 else ""
        report.summary.append(f"image sizes: {common}{others}")
    return report
