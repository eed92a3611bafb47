import pytest
import torch

torch.set_num_threads(2)

# the smallest run that still exercises every part of the trainer
TINY = dict(
    dataset="shapes", image_size=32, train_size=8, val_size=4, batch_size=4, head_channels=16,
    backbone="resnet18", teacher_backbone="resnet18", epochs=2, teacher_epochs=1, lr=0.01,
)


@pytest.fixture
def tiny(tmp_path):
    """A tiny config dict with its own teacher cache and output folder."""
    return {**TINY, "cache_dir": str(tmp_path / "cache"), "out_dir": str(tmp_path / "run")}
