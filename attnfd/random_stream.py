"""Random streams of their own: the student's, the data's, the teacher's and the distillers'.

The cells of a study differ in their distiller; they must not differ in what the seed gives
the student. Building a teacher (a model's random init, before its weights are loaded) and a
distiller's modules (connectors, CBAMs, embeddings) draws from torch's global generator, and
so does a training step of a teacher in train mode (its dropout) or of CIRKD (its sampled
pixels). On one generator those draws would shift every later draw of the student: its
dropout masks and, where the data set augments (VOC, Cityscapes), its batches. And the
students of a cohort (``attnfd.trainer.Cohort``) share the batches and the teacher, so each
must draw from a generator no other student touches. A ``RandomStream`` keeps its own
generator state: entering it swaps that state in and the caller's out; leaving it keeps where
the stream got to and gives the caller's back. Streams nest.

Its state goes into the run's checkpoint, so a resumed run continues every stream exactly.
"""

from __future__ import annotations

import zlib
from typing import TYPE_CHECKING

import numpy as np
import torch

if TYPE_CHECKING:  # typing.Self is Python 3.11's; the project runs on 3.10 too
    from typing import Self


class RandomStream:
    """Named by ``name``, seeded from the run's seed; ``device`` adds that CUDA device's generator.
    ``exact``: seeded with the seed itself, as ``torch.manual_seed(seed)`` seeds the global
    generator (a student's own stream: its init and draws are those it always had)."""

    def __init__(self, seed: int, name: str, device: torch.device, exact: bool = False):
        # a different stream per name, and never the student's own seed
        self.seed = int(seed) if exact else \
            int(np.random.SeedSequence([int(seed) % 2**32, zlib.crc32(name.encode())]).generate_state(1)[0])
        self.device = torch.device(device)
        self.on_cuda = self.device.type == "cuda"
        self.cpu: torch.Tensor | None = None
        self.cuda: torch.Tensor | None = None
        self._outside: tuple = ()

    def __enter__(self) -> Self:
        self._outside = (torch.get_rng_state(), torch.cuda.get_rng_state(self.device) if self.on_cuda else None)
        if self.cpu is None:
            # first use: seed the generators in place (the student's state is saved above)
            torch.default_generator.manual_seed(self.seed)
            if self.on_cuda:
                with torch.cuda.device(self.device):
                    torch.cuda.manual_seed(self.seed)
        else:
            torch.set_rng_state(self.cpu)
            if self.on_cuda and self.cuda is not None:
                torch.cuda.set_rng_state(self.cuda, self.device)
        return self

    def __exit__(self, *exc) -> None:
        self.cpu = torch.get_rng_state()
        torch.set_rng_state(self._outside[0])
        if self.on_cuda:
            self.cuda = torch.cuda.get_rng_state(self.device)
            torch.cuda.set_rng_state(self._outside[1], self.device)
        self._outside = ()

    def state_dict(self) -> dict:
        return {"cpu": self.cpu, "cuda": self.cuda}

    def load_state_dict(self, state: dict) -> None:
        self.cpu = state.get("cpu")
        # a CUDA run's stream resumed on the CPU keeps its CPU part only
        self.cuda = state.get("cuda") if self.on_cuda else None
