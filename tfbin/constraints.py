"""Constraints on latent (float) kernels, applied by Keras after every optimizer step."""
import tensorflow as tf

from tfbin import formulas
from tfbin._registry import serializable


@serializable("mean_centered_clip")
class MeanCenteredClip(tf.keras.constraints.Constraint):
    r"""Latent kernels centred across their input channels, then clipped:

    \[
    w \leftarrow \operatorname{clip}\big(w - \operatorname{mean}_{c_\text{in}}(w),\; -c,\; c\big)
    \]

    the mean taken over the input-channel axis (axis −2) separately for every output channel
    and kernel position, as the XNOR-Net-style step (`meancenterConvParams`, then
    `clampConvParams`) that DAB's official code runs on every binarized conv before each
    forward pass. A Dense kernel `(in, out)` is a 1×1 convolution and is centred over `in`.

    Prabhu, Batchu, Munagala, Gajawada, Namboodiri, "Distribution-Aware Binarization of Neural
    Networks for Sketch Recognition", WACV 2018, arXiv:1804.02941; Rastegari et al., "XNOR-Net",
    ECCV 2016.

    # Arguments
        clip_value: the bound `c` of the latent weights after centring.
    """

    def __init__(self, clip_value: float = 1.0):
        if not clip_value > 0:
            raise ValueError(f"MeanCenteredClip clip_value must be > 0, got {clip_value!r}.")
        self.clip_value = float(clip_value)

    def __call__(self, w):
        return formulas.mean_centered_clip(w, self.clip_value)

    def get_config(self):
        return {"clip_value": self.clip_value}
