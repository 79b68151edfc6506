"""tfbin's binary quantizers as Keras 3 layers: larq's STE sign and every soft->hard quantizer.

Each class is the Keras 3 glue (weights, the soft/hard switch, serialization) around the formulas
of `tfbin.formulas`, which the Keras 2 classes of `tfbin.quantizers` call too: on the same inputs
and sharpness values both compute the same numbers. The hard forms are written so that Larq
Compute Engine fuses them (`sign(x) = tf.sign(tf.sign(x) + 0.1)`, scalar `tf.where`).

Quantizers work as `input_quantizer` / `kernel_quantizer` of `tfbin.keras3.QuantConv2D` and
`QuantDense`, as objects or by the aliases of the Keras 2 path (`"ste_sign"`, `"ede_sign"`, ...).
"""
from __future__ import annotations

import keras
import tensorflow as tf

from tfbin import formulas

__all__ = [
    "Quantizer",
    "SoftHardQuantizer",
    "SteSign",
    "SelfBinarizingSign",
    "EDESign",
    "LibraSign",
    "BoundedRectifier",
    "DistributionAwareSign",
    "ALIASES",
    "get",
    "serialize",
    "as_tensor",
]

ALIASES: dict[str, type] = {}  # alias -> class, the same strings as the Keras 2 path's


def as_tensor(value):
    """The value of a variable (Keras 3's or TensorFlow's) as a TensorFlow tensor. The formulas'
    custom gradients take tensors (a variable read inside one is an error), and on the TensorFlow
    backend `keras.ops.convert_to_tensor` returns a Keras variable as it is."""
    return tf.convert_to_tensor(value)


def _register(alias):
    """Register a class with Keras 3 as `tfbin>ClassName` and under its alias for `get`."""

    def decorator(cls):
        cls = keras.saving.register_keras_serializable(package="tfbin")(cls)
        cls.alias = alias
        ALIASES[alias] = cls
        return cls

    return decorator


class Quantizer(keras.layers.Layer):
    """Base class of the Keras 3 quantizers: an elementwise layer with a `precision` (bits)."""

    precision: int | None = None

    def compute_output_shape(self, input_shape):
        return input_shape


class SoftHardQuantizer(Quantizer):
    """Public base class of quantizers with a soft (training) and a hard (deployed) form.

    As `tfbin.quantizers.SoftHardQuantizer`: subclasses implement `soft(x)` and `hard(x)` and
    list their sharpness roles in `sharpness_defaults` (`{role: initial value}`); each role is
    a non-trainable scalar weight created in `build()` under the name the user chose
    (`sharpness_names={role: name}`, default: the role). `hard_mode` is a trace-time flag that
    `tfbin.keras3.hard(model)` sets.

    # Arguments
        sharpness_names: `{role: weight name}` for the roles to rename.
    """

    precision = 1
    sharpness_defaults: dict[str, float] = {}

    def __init__(self, sharpness_names: dict[str, str] | None = None, **kwargs):
        super().__init__(**kwargs)
        self.sharpness_names = formulas.sharpness_names(type(self).__name__, self.sharpness_defaults, sharpness_names)
        self.hard_mode = False
        self._sharpness_weights = {}

    def build(self, input_shape):
        for role, initial in self.sharpness_defaults.items():
            self._sharpness_weights[role] = self.add_weight(
                name=self.sharpness_names[role],
                shape=(),
                dtype="float32",
                initializer=keras.initializers.Constant(initial),
                trainable=False,
            )
        super().build(input_shape)

    def sharpness(self, role: str):
        """The sharpness weight that plays `role` (e.g. `"v"`, `"t"`), as a tensor."""
        return as_tensor(self._sharpness_weights[role])

    @property
    def sharpness_weights(self) -> dict:
        """`{name: weight}` of this quantizer's sharpness values (names, not roles)."""
        return {self.sharpness_names[r]: w for r, w in self._sharpness_weights.items()}

    def soft(self, x):
        raise NotImplementedError(f"{type(self).__name__} must implement soft(x).")

    def hard(self, x):
        raise NotImplementedError(f"{type(self).__name__} must implement hard(x).")

    def call(self, inputs):
        return self.hard(inputs) if self.hard_mode else self.soft(inputs)

    def get_config(self):
        config = super().get_config()
        renamed = {r: n for r, n in self.sharpness_names.items() if r != n}
        if renamed:
            config["sharpness_names"] = renamed
        return config


@_register("ste_sign")
class SteSign(Quantizer):
    r"""The sign with the straight-through estimator (larq's `ste_sign`).

    \[
    q(x) = \begin{cases} -1 & x < 0 \\ 1 & x \ge 0 \end{cases}, \qquad
    \frac{\partial q}{\partial x} = \mathbb 1\bigl[|x| \le \texttt{clip_value}\bigr]
    \]

    # Arguments
        clip_value: the gradient is zero where `|x|` exceeds it (default 1.0); `None`: no clip.

    # References
        - Courbariaux, Hubara, Soudry, El-Yaniv, Bengio, [Binarized Neural Networks: Training
          Deep Neural Networks with Weights and Activations Constrained to +1 or
          -1](https://arxiv.org/abs/1602.02830), 2016
    """

    precision = 1

    def __init__(self, clip_value: float | None = 1.0, **kwargs):
        super().__init__(**kwargs)
        self.clip_value = clip_value

    def call(self, inputs):
        return formulas.ste_sign(inputs, self.clip_value)

    def get_config(self):
        return {**super().get_config(), "clip_value": self.clip_value}


@_register("self_binarizing_sign")
class SelfBinarizingSign(SoftHardQuantizer):
    r"""Self-Binarizing Networks' smooth sign, sharpened during training.

    \[
    q_\text{soft}(x) = \tanh(v x) + h\,\bigl(\operatorname{sign}(x) - \tanh(v x)\bigr), \qquad
    q_\text{hard}(x) = \operatorname{sign}(x)
    \]

    The soft form's gradient is `v·(1 − tanh²(v·x))` whatever `h` is. With `normalize=True`
    (kernels) `x` is first divided by the mean `|x|` of its output channel (a constant), so that
    latent weights and batch-normalized activations sharpen at the same pace.

    # Arguments
        v: name of the sharpness weight (initial value 1.0).
        normalize: divide by the per-output-channel mean absolute value first (kernels).
        h: name of the hard-forward weight (initial value 0.0: the paper's pure soft form).

    # References
        - Lahoud, Achanta, Márquez-Neila, Süsstrunk, [Self-Binarizing
          Networks](https://arxiv.org/abs/1902.00730), 2019
    """

    sharpness_defaults = dict(formulas.SELF_BINARIZING_SHARPNESS)

    def __init__(self, v: str = "v", normalize: bool = False, h: str = "h", **kwargs):
        kwargs.setdefault("sharpness_names", {"v": v, "h": h})
        super().__init__(**kwargs)
        self.normalize = bool(normalize)

    def soft(self, x):
        if self.normalize:
            x = formulas.channel_normalize(x)
        return formulas.blended_tanh(x, self.sharpness("v"), self.sharpness("h"))

    def hard(self, x):
        return formulas.sign(x)

    def get_config(self):
        config = super().get_config()
        if self.normalize:
            config["normalize"] = True
        return config


@_register("ede_sign")
class EDESign(SoftHardQuantizer):
    r"""The sign with IR-Net's Error Decay Estimator (EDE) as its gradient.

    \[
    q(x) = \operatorname{sign}(x), \qquad
    \frac{\partial q}{\partial x} = k\, t\, \bigl(1 - \tanh^2(t x)\bigr)
    \]

    The forward is the sign in both forms (`sign(0) = +1`). `t` grows log-linearly from `T_min`
    to `T_max` over training and `k = max(1/t, 1)` (`tfbin.schedules.ede`).

    # Arguments
        t, k: names of the sharpness weights (initial values 0.1 and 10, IR-Net's `T_min` and `1/T_min`).

    # References
        - Qin, Gong, Liu, Bai, Song, Yu, Sun, [Forward and Backward Information Retention for
          Accurate Binary Neural Networks](https://arxiv.org/abs/1909.10788) (IR-Net), CVPR 2020
    """

    sharpness_defaults = dict(formulas.EDE_SHARPNESS)

    def __init__(self, t: str = "t", k: str = "k", **kwargs):
        kwargs.setdefault("sharpness_names", {"t": t, "k": k})
        super().__init__(**kwargs)

    def soft(self, x):
        return formulas.ede_sign(x, self.sharpness("t"), self.sharpness("k"))

    def hard(self, x):
        return formulas.sign(x)


@_register("libra_sign")
class LibraSign(SoftHardQuantizer):
    r"""IR-Net's Libra Parameter Binarization for kernels, with the EDE gradient.

    Per output channel `o` (the last kernel axis):

    \[
    \hat w = w - \operatorname{mean}_o(w), \quad
    w_\text{std} = \hat w / \operatorname{std}_o(\hat w), \quad
    s_o = 2^{\operatorname{round}(\log_2 \operatorname{mean}_o |w_\text{std}|)}, \quad
    q(w) = s_o \operatorname{sign}(w_\text{std})
    \]

    `std` is the unbiased estimate; `s_o` is a constant (stop-gradient) and the sign has the
    EDE gradient (`EDESign`). Every weight of channel `o` is ±`s_o`, which LCE folds into the
    binary conv's output multiplier. Kernel quantizer only.

    # Arguments
        t, k: names of the EDE sharpness weights (initial values 0.1 and 10).
        epsilon: floor of the standard deviation (default 1e-8).

    # References
        - Qin et al., [Forward and Backward Information Retention for Accurate Binary Neural
          Networks](https://arxiv.org/abs/1909.10788) (IR-Net), CVPR 2020
    """

    sharpness_defaults = dict(formulas.EDE_SHARPNESS)

    def __init__(self, t: str = "t", k: str = "k", epsilon: float = 1e-8, **kwargs):
        kwargs.setdefault("sharpness_names", {"t": t, "k": k})
        super().__init__(**kwargs)
        self.epsilon = epsilon

    def build(self, input_shape):
        if len(input_shape) < 2:
            raise ValueError(
                f"LibraSign is a kernel quantizer (per output channel statistics); it got a "
                f"tensor of shape {input_shape}. Use EDESign as the input quantizer."
            )
        super().build(input_shape)

    def soft(self, w):
        w_std, scale = formulas.libra_standardize(w, self.epsilon)
        return formulas.ede_sign(w_std, self.sharpness("t"), self.sharpness("k")) * scale

    def hard(self, w):
        return formulas.libra_hard(w, self.epsilon)

    def get_config(self):
        return {**super().get_config(), "epsilon": self.epsilon}


@_register("bounded_rectifier")
class BoundedRectifier(SoftHardQuantizer):
    r"""Adjustable Bounded Rectifier (ABR): a learnable per-channel slope, sharpened on a schedule.

    \[
    q_\text{soft}(x) = \operatorname{clip}(v a x + c, 0, 1), \qquad
    q_\text{hard}(x) = \mathbb 1[v a x + c \ge 0.5] \in \{0, 1\}
    \]

    `a` (one per channel of the last axis, trainable, kept ≥ `floor`) times the sharpness `v`
    is the slope the unit computes with. With `symmetric=True`: soft `clip(v a x, −1, 1)`, hard
    `sign(x)`. The hard-forward weight `h` blends the step into the forward while keeping the
    ramp's gradient: `q = ramp + h·(step − ramp)`. The {0, 1} hard form is not a ±1 activation:
    LCE fuses it only after the Keras 2 exporter's exact rewrite into `sign(x − θ)`; the
    symmetric form fuses directly.

    # Arguments
        initial_slope: initial value of `a` (default 1.0, ≥ `floor`).
        floor: the smallest slope allowed (default 0.01, > 0).
        offset: `c` (default 0.5; ignored when `symmetric`).
        symmetric: ±1 output instead of {0, 1} (default False).
        v: name of the sharpness weight (initial value 1.0).
        h: name of the hard-forward weight (initial value 0.0).

    # References
        - Wu, Lin, Tang, [Adjustable Bounded Rectifiers: Towards Deep Binary
          Representations](https://arxiv.org/abs/1511.06201), 2015
    """

    sharpness_defaults = dict(formulas.BOUNDED_RECTIFIER_SHARPNESS)

    def __init__(self, initial_slope: float = 1.0, floor: float = 0.01, offset: float = 0.5,
                 symmetric: bool = False, v: str = "v", h: str = "h", **kwargs):
        if not floor > 0:
            raise ValueError(f"BoundedRectifier floor must be > 0, got {floor}.")
        if not initial_slope >= floor:
            raise ValueError(f"BoundedRectifier initial_slope ({initial_slope}) must be >= floor ({floor}).")
        kwargs.setdefault("sharpness_names", {"v": v, "h": h})
        super().__init__(**kwargs)
        self.initial_slope = float(initial_slope)
        self.floor = float(floor)
        self.offset = float(offset)
        self.symmetric = bool(symmetric)

    def build(self, input_shape):
        channels = input_shape[-1]
        if channels is None:
            raise ValueError("BoundedRectifier needs a known channel (last) dimension.")
        self.slope = self.add_weight(
            name="slope",
            shape=(channels,),
            initializer=keras.initializers.Constant(self.initial_slope),
            constraint=formulas.slope_floor(self.floor),
            trainable=True,
        )
        super().build(input_shape)

    def effective_slope(self):
        """`v·a` per channel: the slope the unit computes with."""
        return self.sharpness("v") * as_tensor(self.slope)

    def soft(self, x):
        return formulas.blended_ramp(x, self.effective_slope(), self.sharpness("h"), self.symmetric, self.offset)

    def hard(self, x):
        return formulas.bounded_rectifier_hard(x, self.effective_slope(), self.symmetric, self.offset)

    def get_config(self):
        return {
            **super().get_config(),
            "initial_slope": self.initial_slope,
            "floor": self.floor,
            "offset": self.offset,
            "symmetric": self.symmetric,
        }


@_register("dab_sign")
class DistributionAwareSign(SoftHardQuantizer):
    r"""Distribution-Aware Binarization (DAB) of kernels: two levels per output filter.

    Per output channel `o`, with the least-squares optimal split of `tfbin.formulas.dab_split`
    (`K*` maximizes `S_K²/K + (S − S_K)²/(n − K)`; levels are the group means, rounded to 8
    significant bits):

    \[
    q(w) = \begin{cases} \alpha_o & w \ge \theta_o \\ -\beta_o & \text{otherwise} \end{cases}
    \;=\; \tfrac{\alpha_o+\beta_o}{2}\operatorname{sign}(w - \theta_o) + \tfrac{\alpha_o-\beta_o}{2}
    \]

    Gradient (the official code's rule): `|α_o|·1[|w|<1] + 1/K` in the top group and
    `|β_o|·1[|w|<1] + 1/(n−K)` in the rest. Forward values are the same in both forms; two
    levels per channel are not ±scale, so LCE fuses this kernel only after the Keras 2
    exporter's exact rewrite into two binary convs. Kernel quantizer only.

    # Arguments
        refresh_every: training calls between two exact splits (default 1: every call, the
            paper's rule); in between, the stored threshold is kept and the levels are the exact
            group means around it. The hard form always computes the exact split.

    # References
        - Prabhu, Batchu, Munagala, Gajawada, Namboodiri, [Distribution-Aware Binarization of
          Neural Networks for Sketch Recognition](https://arxiv.org/abs/1804.02941), WACV 2018
    """

    def __init__(self, refresh_every: int = 1, **kwargs):
        super().__init__(**kwargs)
        if int(refresh_every) != refresh_every or refresh_every < 1:
            raise ValueError(f"DistributionAwareSign refresh_every must be an integer >= 1, got {refresh_every!r}.")
        self.refresh_every = int(refresh_every)

    def build(self, input_shape):
        if len(input_shape) < 2:
            raise ValueError(
                f"DistributionAwareSign is a kernel quantizer (per output filter split); it got "
                f"a tensor of shape {input_shape}. Use a sign quantizer for activations."
            )
        if self.refresh_every > 1:  # kept with the model and identical on every replica
            self._threshold = self.add_weight(name="split_threshold", shape=(input_shape[-1],), initializer="zeros",
                                              trainable=False, aggregation="only_first_replica")
            self._calls = self.add_weight(name="split_calls", shape=(), dtype="int64", initializer="zeros",
                                          trainable=False, aggregation="only_first_replica")
        super().build(input_shape)

    def soft(self, w):
        if self.refresh_every == 1:
            return formulas.dab_soft(w, formulas.dab_split(w))
        return formulas.dab_soft(w, formulas.dab_refreshed_split(w, self._threshold, self._calls, self.refresh_every))

    def hard(self, w):
        return formulas.dab_hard(w)

    def get_config(self):
        config = super().get_config()
        if self.refresh_every != 1:
            config["refresh_every"] = self.refresh_every
        return config


_BY_NAME = {
    **ALIASES,
    **{cls.__name__: cls for cls in ALIASES.values()},
    **{f"tfbin>{cls.__name__}": cls for cls in ALIASES.values()},
}


def get(identifier):
    """A quantizer from an alias (`"ste_sign"`, `"ede_sign"`, ...), a class name, a serialized
    config, a quantizer or any callable; `None` stays `None`."""
    if identifier is None:
        return None
    if isinstance(identifier, str):
        if identifier not in _BY_NAME:
            raise ValueError(f"Unknown quantizer {identifier!r}; the aliases are {sorted(ALIASES)}.")
        return _BY_NAME[identifier]()
    if isinstance(identifier, dict):
        return keras.saving.deserialize_keras_object(identifier)
    if callable(identifier):
        return identifier
    raise TypeError(f"Expected a quantizer, its alias or its config; got {identifier!r}.")


def serialize(quantizer):
    """The config of `quantizer` that `get` reads back (`None` for `None`)."""
    return None if quantizer is None else keras.saving.serialize_keras_object(quantizer)
