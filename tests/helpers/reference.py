"""Published reference numbers the model tests compare against."""

from __future__ import annotations

# Reference numbers from ../shared/reference/efficientnet-facts.md (torchvision 0.29 / timm 1.0).
PARAMS_1000 = {
    "efficientnet_b0": 5_288_548,
    "efficientnet_b1": 7_794_184,
    "efficientnet_b2": 9_109_994,
    "efficientnet_b3": 12_233_232,
    "efficientnet_b4": 19_341_616,
    "efficientnet_b5": 30_389_784,
    "efficientnet_b6": 43_040_704,
    "efficientnet_b7": 66_347_960,
    "efficientnet_b8": 87_413_142,
    "efficientnet_l2": 480_309_308,
    "efficientnet_lite0": 4_652_008,
    "efficientnet_lite1": 5_416_680,
    "efficientnet_lite2": 6_092_072,
    "efficientnet_lite3": 8_197_096,
    "efficientnet_lite4": 13_006_568,
    "efficientnetv2_b0": 7_139_704,
    "efficientnetv2_b1": 8_141_052,
    "efficientnetv2_b2": 10_096_086,
    "efficientnetv2_b3": 14_358_406,
    "efficientnetv2_s": 21_458_488,
    "efficientnetv2_m": 54_139_356,
    "efficientnetv2_l": 118_515_272,
    "efficientnetv2_xl": 208_119_808,
}

# torchvision metadata "GFLOPS" (multiply-adds) and the resolution it was measured at.
TORCHVISION_GMACS = {
    "efficientnet_b0": (0.386, 224),
    "efficientnet_b1": (0.687, 240),
    "efficientnet_b2": (1.088, 288),
    "efficientnet_b3": (1.827, 300),
    "efficientnet_b4": (4.394, 380),
    "efficientnet_b5": (10.266, 456),
    "efficientnet_b6": (19.068, 528),
    "efficientnet_b7": (37.746, 600),
    "efficientnetv2_s": (8.366, 384),
    "efficientnetv2_m": (24.582, 480),
    "efficientnetv2_l": (56.08, 480),
}
