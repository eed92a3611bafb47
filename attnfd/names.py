"""The backbone and tap names a config may use, in a module that imports nothing.

``attnfd.config`` validates against these, so that a command line is checked (and a typo
reported) before torch is imported; ``attnfd.models`` builds exactly these.
"""

BACKBONES = ("resnet18", "resnet34", "resnet50", "resnet101", "mobilenet_v2")
TAPS = ("backbone", "encoder", "decoder")
# ResNet layer1-3 (MobileNetV2's matching expansions), taken only when a run asks for them
STAGE_TAPS = ("stage1", "stage2", "stage3")
ALL_TAPS = (*STAGE_TAPS, *TAPS)
# ``--resume auto`` (``StudySpec.resume``): continue the named study if its storage holds it, else
# start it, so a requeued job reruns its command unchanged
RESUME_AUTO = "auto"
# the label value no loss or metric counts: VOC's boundaries, every data set's unlabelled pixels
IGNORE_INDEX = 255
