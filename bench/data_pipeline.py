"""Images per second of the VOC training input pipeline.

Writes a miniature VOC copy of 500x375 JPEGs (attnfd.data.miniature), then measures

- the trainer's DataLoader (attnfd.trainer._loader: DistributedSampler shuffle, workers,
  persistent workers, batches of the VOC recipe's size, 513x513 crops), and
- a plain loop in this process: PIL decode of image and palette label, the same v2
  transforms, one image at a time, with one torch thread as a loader worker has (and, as
  an extra figure, with this process's default thread count),

and prints both figures and their ratio (loader / one-thread loop). Each is the median over ``--repeats`` passes; the
loader's first pass (worker start-up) is timed separately and not in the median; the
measurements are interleaved, pass by pass.

    python bench/data_pipeline.py --images 120 --workers 2
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import tempfile
import time

import numpy as np
import torch
from PIL import Image
from torchvision import tv_tensors
from torchvision.transforms.v2.functional import pil_to_tensor

from attnfd.config import TrainConfig
from attnfd.data import build_dataset
from attnfd.data.miniature import write_voc
from attnfd.data.transforms import train_transform
from attnfd.trainer import _loader


def loader_pass(loader) -> tuple[int, float]:
    start = time.perf_counter()
    count = 0
    for images, labels in loader:
        count += images.shape[0]
    return count, time.perf_counter() - start


def plain_pass(samples, transform) -> tuple[int, float]:
    start = time.perf_counter()
    for sample in samples:
        with Image.open(sample.image) as picture:
            image = tv_tensors.Image(pil_to_tensor(picture.convert("RGB")))
        with Image.open(sample.label) as picture:
            labels = tv_tensors.Mask(torch.from_numpy(np.array(picture)))
        image, labels = transform(image, labels)
        labels = labels.long()
    return len(samples), time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--images", type=int, default=120, help="training images to generate")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="attnfd-bench-voc-") as root:
        write_voc(root, train=args.images, val=1, sizes=((375, 500),))
        config = TrainConfig.from_dict({"dataset": "voc", "data_root": root, "workers": args.workers})
        dataset = build_dataset(config, "train")
        loader = _loader(dataset, config, torch.device("cpu"), train=True)

        transform = train_transform(config.image_size)
        first_count, first = loader_pass(loader)
        # a DataLoader worker runs torch with one thread; the loop is timed that way and with
        # this process's default, which oversubscribes the cores when the machine is busy
        default_threads = torch.get_num_threads()
        piped, plain = [], {1: [], default_threads: []}
        # the three are interleaved so that a shared machine's load weighs on each alike
        for epoch in range(1, args.repeats + 1):
            loader.sampler.set_epoch(epoch)
            count, seconds = loader_pass(loader)
            piped.append(count / seconds)
            for threads, rates in plain.items():
                torch.set_num_threads(threads)
                count, seconds = plain_pass(dataset.samples, transform)
                rates.append(count / seconds)
            torch.set_num_threads(default_threads)

    result = {
        "images": args.images, "image_size": "500x375", "crop": config.image_size, "batch_size": config.batch_size,
        "workers": args.workers, "cores": os.cpu_count(), "load_avg_1min": round(os.getloadavg()[0], 2),
        "loader_first_pass_img_s": round(first_count / first, 1),
        "loader_img_s": round(statistics.median(piped), 1),
        "plain_loop_img_s": round(statistics.median(plain[1]), 1),
        f"plain_loop_{default_threads}_threads_img_s": round(statistics.median(plain[default_threads]), 1),
    }
    result["ratio"] = round(result["loader_img_s"] / result["plain_loop_img_s"], 2)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
