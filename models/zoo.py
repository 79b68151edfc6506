"""larq-zoo architectures, built by the zoo and then given a recipe's quantizers by `binarize`.

The zoo's quantizers are factory properties, not fields, so instead of forking the zoo, tfbin
builds the zoo model as it is (optionally with pretrained weights) and replaces the quantizers of
its binarized layers (`tfbin.binarize` keeps the weights).
"""
from __future__ import annotations

import os

import tensorflow as tf

# name -> (larq_zoo module, function, smallest square input the zoo can build)
# The minimum sizes were found by bisection on larq-zoo 2.4 (`num_classes=10`, 3 channels).
ZOO = {
    "quicknet_small": ("sota", "QuickNetSmall", 29),
    "quicknet": ("sota", "QuickNet", 29),
    "quicknet_large": ("sota", "QuickNetLarge", 29),
    "birealnet": ("literature", "BiRealNet", 1),
    "binary_resnet_e18": ("literature", "BinaryResNetE18", 6),
    "real_to_binary_net": ("literature", "RealToBinaryNet", 1),
    "binary_densenet28": ("literature", "BinaryDenseNet28", 8),
    "binary_densenet37": ("literature", "BinaryDenseNet37", 8),
    "binary_densenet37_dilated": ("literature", "BinaryDenseNet37Dilated", 2),
    "binary_densenet45": ("literature", "BinaryDenseNet45", 8),
    "meliusnet22": ("literature", "MeliusNet22", 1),
    "xnornet": ("literature", "XNORNet", 217),
    "binary_alexnet": ("literature", "BinaryAlexNet", 57),
    "dorefanet": ("literature", "DoReFaNet", 44),
}


def build_zoo(name: str, *, input_shape, num_classes: int, weights) -> tf.keras.Model:
    """Build a larq-zoo model with its own quantizers; clear errors for sizes and weights."""
    import larq_zoo

    module, function, min_size = ZOO[name]
    if input_shape is not None:
        if len(input_shape) != 3 or input_shape[-1] != 3:
            raise ValueError(
                f"{name} takes RGB images (height, width, 3); got input_shape={tuple(input_shape)}. "
                "Repeat grayscale channels to 3 (tfbin train does this)."
            )
        if min(input_shape[:2]) < min_size:
            raise ValueError(
                f"{name} needs inputs of at least {min_size}x{min_size} pixels; got "
                f"{input_shape[0]}x{input_shape[1]}. Resize the images."
            )
    if weights not in (None, "imagenet") and not os.path.isfile(weights):
        raise FileNotFoundError(f"Pretrained weights file {weights!r} does not exist.")
    factory = getattr(getattr(larq_zoo, module), function)
    try:
        return factory(input_shape=input_shape, weights=weights, num_classes=num_classes)
    except ValueError as err:
        if "dimension" in str(err).lower() or "negative" in str(err).lower():
            raise ValueError(
                f"{name} cannot be built for input_shape={tuple(input_shape)}: a layer's output "
                f"would be empty ({str(err).splitlines()[0][:200]}). Use larger inputs."
            ) from err
        raise
    except Exception as err:
        if weights == "imagenet":
            raise RuntimeError(
                f"Could not download {name}'s pretrained ImageNet weights ({type(err).__name__}: "
                f"{err}). Offline, download the weights file on a machine with internet (larq-zoo "
                "releases) and pass weights='path/to/file.h5'; or use weights=None."
            ) from err
        raise
