"""The backbone and tap names a config may use, in a module that imports nothing.

``attnfd.config`` validates against these, so that a command line is checked (and a typo
reported) before torch is imported; ``attnfd.models`` builds exactly these.
"""

BACKBONES = ("resnet18", "resnet34", "resnet50", "resnet101", "mobilenet_v2")
TAPS = ("backbone", "encoder", "decoder")
