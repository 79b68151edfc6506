"""Keras 3's JAX backend for training tfbin.keras3 nets, export still through TensorFlow (#40, item 4).

    KERAS_BACKEND is set per worker; run it with a Python that has TensorFlow 2.20, Keras 3, LCE
    and jax (e.g. a copy of `.venv-keras3` plus `pip install "jax[cpu]"`):

    python bench/keras3_jax.py [--out bench/results/keras3_jax.json]

What it measures, each backend in a subprocess of its own (KERAS_BACKEND is read when Keras is
imported):

1. `tensorflow` worker (the reference): every quantizer tfbin.keras3 exports, on fixed inputs
   (activations `[2, 4, 4, 3]`, kernels `[3, 3, 8, 8]`, non-default sharpness values where a
   quantizer has them): the value, the gradient of `sum(q(x))` (`tf.GradientTape`) and the hard
   form; a tiny net per quantizer (float stem, `QuantConv2D` 8 filters, `QuantDense` 16, BN,
   float head; 64 images of 8x8, batch 16, SGD 0.05, 2 epochs, no shuffling) trained from seeded
   initial weights, whose losses and final weights the JAX run is compared with; `recalibrate` of
   the untrained net; `SharpeningScheduler` with `update_freq="epoch"` and `"batch"` driving a
   probe quantizer written in `keras.ops` (so that it runs on both backends).
2. `jax` worker: `import tfbin.keras3` as a user writes it; then, so that what lies past the
   package's backend guard is measured too, the modules of tfbin.keras3 are loaded with the
   package `__init__` skipped, and each quantizer is run: eager forward, forward under `jax.jit`,
   `jax.grad` of `sum(q(x))` against the TensorFlow gradient (max |difference|), the hard form;
   the tiny net with `model.fit` (`jit_compile` left at its default, and `False`); `recalibrate`
   (eager); `SharpeningScheduler` on a tfbin quantizer's weights outside `fit`. Keras's traceback
   filtering is switched off so that the errors recorded are the ones raised (with it on, a
   JAX tracer error surfaces as `AttributeError: 'str' object has no attribute '_error_repr'`;
   recorded once).
3. `jax-probe` worker: the same checks for larq's four twins (SteSign, ApproxSign, SwishSign,
   MagnitudeAwareSign) with three functions replaced in the process by `keras.ops` versions
   (`tfbin.formulas.sign`, `tfbin.formulas.ste_sign`, `tfbin.keras3.binary_quantizers.as_tensor`):
   whether the fix proposed for them (in the JSON's `probe.proposed_fix`) carries their custom
   gradients over. It saves the JAX-trained weights, and `SharpeningScheduler` runs in `fit` on
   a quantizer written in `keras.ops` (`update_freq` "epoch", "batch", and "batch" with the
   state sync proposed in the JSON's `probe.scheduler_fix`).
4. `export` worker (TensorFlow): each JAX-trained net's weights loaded into the same net on the
   TensorFlow backend: its hard outputs against the JAX ones, then `tfbin.keras3.convert`,
   `op_histogram` and `verify`.

Writes bench/results/keras3_jax.json (atomically): versions, per quantizer and check `passed`,
max |difference| against TensorFlow and the error text, and each worker's wall time. About a
minute on 2 cores.
"""
import argparse
import json
import os
import platform
import re
import subprocess
import sys
import tempfile
import time
import traceback
from importlib import metadata

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

OUT = os.path.join(ROOT, "bench", "results", "keras3_jax.json")
ATOL = 1e-5  # |JAX − TensorFlow| a value or gradient may differ by (float32 kernels of two compilers)
RTOL = 1e-5  # and BatchNorm statistics relatively (moving variances of binary conv outputs reach ~100)
LOSS_ATOL = 1e-3  # per-epoch loss of the tiny net, JAX against TensorFlow
IMAGES, BATCH, EPOCHS, LR = 64, 16, 2, 0.05
ERROR_CHARS = 700

# (name, class in tfbin.keras3, kwargs, what it quantizes, sharpness values, (input, kernel) of the tiny net)
# "case" in a slot: the quantizer itself; else an alias (its default form).
CASES = [
    ("SteSign", "SteSign", {}, "activation", {}, ("case", "case")),
    ("ApproxSign", "ApproxSign", {}, "activation", {}, ("case", "case")),
    ("SwishSign", "SwishSign", {}, "activation", {}, ("case", "case")),
    ("MagnitudeAwareSign", "MagnitudeAwareSign", {}, "kernel", {}, ("ste_sign", "case")),
    ("SelfBinarizingSign", "SelfBinarizingSign", {}, "activation", {"v": 2.0}, ("case", "case")),
    ("SelfBinarizingSign(normalize)", "SelfBinarizingSign", {"normalize": True}, "kernel", {"v": 2.0}, ("ste_sign", "case")),
    ("EDESign", "EDESign", {}, "activation", {"t": 1.5, "k": 1.0}, ("case", "case")),
    ("LibraSign", "LibraSign", {}, "kernel", {"t": 1.5, "k": 1.0}, ("ste_sign", "case")),
    ("BoundedRectifier", "BoundedRectifier", {}, "activation", {}, ("case", "ste_sign")),
    ("BoundedRectifier(symmetric)", "BoundedRectifier", {"symmetric": True}, "activation", {"v": 1.5, "h": 0.5}, ("case", "ste_sign")),
    ("DistributionAwareSign", "DistributionAwareSign", {}, "kernel", {}, ("ste_sign", "case")),
    ("DistributionAwareSign(refresh_every=2)", "DistributionAwareSign", {"refresh_every": 2}, "kernel", {}, ("ste_sign", "case")),
]
LARQ_TWINS = ["SteSign", "ApproxSign", "SwishSign", "MagnitudeAwareSign"]
SOFT_HARD = {"SelfBinarizingSign", "EDESign", "LibraSign", "BoundedRectifier", "DistributionAwareSign"}
MODULES = ["binary_quantizers", "quant_layers", "kernel_constraints", "hard_form", "sharpness_values",
           "sharpening", "recalibration", "binarization", "lce_export", "verification"]
PROPOSED_FIX = (
    "tfbin/keras3/binary_quantizers.py only, the TensorFlow backend's code left as it is: "
    "(1) as_tensor(value) returns keras.ops.convert_to_tensor(value) when keras.backend.backend() != "
    "'tensorflow' (on JAX that is the variable's array, a tracer inside fit); "
    "(2) SteSign, ApproxSign, SwishSign and MagnitudeAwareSign call module-level _sign/_ste_sign chosen once "
    "at import: formulas.sign/formulas.ste_sign on TensorFlow, and on other backends "
    "keras.ops.sign(keras.ops.sign(x) + 0.1) and the same STE under keras.ops.custom_gradient "
    "(where(|x| <= clip_value, dy, 0)); (3) tfbin/keras3/__init__.py's guard lets 'jax' through. "
    "The probe replaces formulas.sign, formulas.ste_sign and as_tensor in its process to measure this."
)

SCHEDULER_FIX = (
    "tfbin/keras3/sharpening.py, SharpeningScheduler: before assigning (ScheduledSharpening._apply), call "
    "self.model.jax_state_sync() where the model has it (the JAX trainer; the TensorFlow one has no such method). "
    "The JAX trainer carries the variables in its own state through an epoch and reads them back only where a "
    "callback has synced it, so per-batch assignments are otherwise lost and overwritten at the epoch's end."
)


def cases(names=None):
    return [dict(zip(("name", "cls", "kwargs", "on", "sharpness", "slots"), c)) for c in CASES
            if names is None or c[0] in names]


def error_text(err: BaseException) -> str:
    """`Type: message` (ANSI codes, array values and Keras's call summary dropped) and the innermost
    frame in tfbin of the error or of the error it was raised from (JAX_TRACEBACK_FILTERING=off)."""
    message = re.sub(r"\x1b\[[0-9;]*m", "", str(err)).split("\n\nArguments received by")[0]
    message = re.sub(r"'\[\[.*?\]\]'", "'<array>'", message, flags=re.S)
    text = f"{type(err).__name__}: {' '.join(message.split())}"
    frames, seen = [], err
    while seen is not None:
        frames = [f for f in traceback.extract_tb(seen.__traceback__) if f"{os.sep}tfbin{os.sep}" in f.filename] or frames
        seen = seen.__cause__ or seen.__context__
    if frames:
        f = frames[-1]
        text = f"[{os.path.relpath(f.filename, ROOT)}:{f.lineno} {f.name}: {f.line}] {text}"
    return text[:ERROR_CHARS]


def attempt(check: dict, function):
    """Run `function()` into `check`: its result merged in, or `passed: False` and the error."""
    try:
        check.update(function() or {})
    except Exception as err:  # noqa: BLE001 - a measurement: every failure is recorded
        check.update(passed=False, error=error_text(err))
    check.setdefault("passed", True)
    return check


def max_diff(a, b) -> float:
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    if a.shape != b.shape:
        raise ValueError(f"shapes differ: {a.shape} vs {b.shape}")
    return float(np.max(np.abs(a - b))) if a.size else 0.0


# ---------------------------------------------------------------------------------------------
# What both backends build (Keras and tfbin.keras3's modules passed in: `m.binary_quantizers`, ...)


def inputs():
    rng = np.random.default_rng(0)
    return {
        "activation": rng.normal(0.0, 1.2, (2, 4, 4, 3)).astype("float32"),
        "kernel": rng.normal(0.0, 0.5, (3, 3, 8, 8)).astype("float32"),
        "images": rng.normal(0.0, 1.0, (IMAGES, 8, 8, 1)).astype("float32"),
    }


def labels(images):
    return (images[:, :4, :4, 0].mean(axis=(1, 2)) > 0).astype("int32")


def quantizer(m, case, shape=None):
    """A fresh quantizer of `case`, built for `shape` when given, its sharpness values set."""
    q = getattr(m.binary_quantizers, case["cls"])(**case["kwargs"])
    if shape is not None:
        q.build(tuple(shape))
        for name, value in case["sharpness"].items():
            q.sharpness_weights[name].assign(value)
    return q


def slot(m, case, which):
    return quantizer(m, case) if case["slots"][which] == "case" else case["slots"][which]


def tiny_net(keras, m, case, seed=0):
    """Float stem, QuantConv2D(8) + BN, QuantDense(16) + BN, float head: every layer named, so that
    a weights file of one backend loads into the other."""
    keras.utils.set_random_seed(seed)
    L = keras.layers
    images = keras.Input((8, 8, 1), name="images")
    x = L.BatchNormalization(name="bn0")(L.Conv2D(8, 3, padding="same", use_bias=False, name="stem")(images))
    x = m.quant_layers.QuantConv2D(8, 3, padding="same", pad_values=1.0, use_bias=False, name="qconv",
                                   input_quantizer=slot(m, case, 0), kernel_quantizer=slot(m, case, 1),
                                   kernel_constraint="weight_clip")(x)
    x = L.Flatten(name="flat")(L.BatchNormalization(name="bn1")(x))
    x = m.quant_layers.QuantDense(16, use_bias=False, name="qdense", input_quantizer=slot(m, case, 0),
                                  kernel_quantizer=slot(m, case, 1), kernel_constraint="weight_clip")(x)
    outputs = L.Dense(2, name="head")(L.BatchNormalization(name="bn2")(x))
    model = keras.Model(images, outputs, name="tiny")
    for name, value in case["sharpness"].items():
        m.sharpness_values.set(model, name, value)
    return model


def compiled(keras, model, jit_compile=None):
    kwargs = {} if jit_compile is None else {"jit_compile": jit_compile}
    model.compile(optimizer=keras.optimizers.SGD(LR), loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                  **kwargs)
    return model


def fit(keras, model, data, callbacks=()):
    x = data["images"]
    return model.fit(x, labels(x), batch_size=BATCH, epochs=EPOCHS, shuffle=False, verbose=0, callbacks=list(callbacks))


def batch_norm_statistics(model):
    return [np.asarray(v) for layer in model.layers if "bn" in layer.name
            for v in (layer.moving_mean, layer.moving_variance)]


def probe_class(keras, m):
    """A soft->hard quantizer written in keras.ops (`tanh(v·x)`, hard `sign`), so that
    SharpeningScheduler can be run inside `fit` on both backends."""

    class OpsTanhSign(m.binary_quantizers.SoftHardQuantizer):
        sharpness_defaults = {"v": 1.0}

        def soft(self, x):
            return keras.ops.tanh(keras.ops.convert_to_tensor(self._sharpness_weights["v"]) * x)

        def hard(self, x):
            return keras.ops.sign(keras.ops.sign(x) + 0.1)

    return OpsTanhSign


def scheduler_probe(keras, m, data, update_freq, sync=False):
    """`SharpeningScheduler({"v": Linear(1, 9, 2)})` in `fit` of a tiny net on the probe quantizer:
    the values it logged at the end of each epoch and what TensorFlow's run logs there. `sync`:
    the scheduler calls the JAX trainer's `jax_state_sync()` before it assigns (the fix proposed
    for `update_freq="batch"`, SCHEDULER_FIX)."""
    from tfbin import schedules

    cls = probe_class(keras, m)
    keras.utils.set_random_seed(0)
    L = keras.layers
    images = keras.Input((8, 8, 1))
    x = m.quant_layers.QuantConv2D(8, 3, padding="same", pad_values=1.0, use_bias=False, input_quantizer=cls(),
                                   kernel_quantizer="ste_sign")(L.BatchNormalization()(L.Conv2D(8, 3, padding="same")(images)))
    model = compiled(keras, keras.Model(images, L.Dense(2)(L.Flatten()(x))))
    schedule = schedules.Linear(1.0, 9.0, EPOCHS)
    scheduler = m.sharpening.SharpeningScheduler({"v": schedule}, update_freq=update_freq)
    if sync:
        def apply(epoch, scheduler=scheduler, original=scheduler._apply):
            scheduler.model.jax_state_sync()
            original(epoch)

        scheduler._apply = apply
    logged = fit(keras, model, data, [scheduler]).history["v"]
    steps = IMAGES // BATCH
    last = (lambda e: e) if update_freq == "epoch" else (lambda e: e + (steps - 1) / steps)
    expected = [schedule(last(e)) for e in range(EPOCHS)]
    return {"logged_v": [round(float(v), 6) for v in logged], "expected_v": expected,
            "passed": bool(np.allclose(logged, expected))}


# ---------------------------------------------------------------------------------------------
# Workers


def tensorflow_modules():
    import keras
    import tensorflow as tf  # noqa: F401
    import tfbin.keras3 as tb
    from tfbin.keras3 import binary_quantizers, quant_layers, sharpening, sharpness_values

    assert keras.backend.backend() == "tensorflow", keras.backend.backend()
    m = argparse.Namespace(binary_quantizers=binary_quantizers, quant_layers=quant_layers, sharpening=sharpening,
                           sharpness_values=sharpness_values)
    return keras, tb, m


def worker_tensorflow(tmp):
    import tensorflow as tf

    keras, tb, m = tensorflow_modules()
    data = dict(np.load(os.path.join(tmp, "inputs.npz")))
    arrays, report = {}, {"quantizers": {}}
    for case in cases():
        name, x = case["name"], data[case["on"]]
        q = quantizer(m, case, x.shape)
        xt = tf.convert_to_tensor(x)
        with tf.GradientTape() as tape:
            tape.watch(xt)
            y = q(xt)
        arrays[f"{name}/value"], arrays[f"{name}/grad"] = y.numpy(), tape.gradient(y, xt).numpy()
        if case["cls"] in SOFT_HARD:
            q = quantizer(m, case, x.shape)
            q.hard_mode = True
            arrays[f"{name}/hard"] = q(xt).numpy()
        model = tiny_net(keras, m, case)
        for i, w in enumerate(model.get_weights()):
            arrays[f"{name}/initial/{i}"] = w
        recalibrated = tiny_net(keras, m, case)
        tb.recalibrate(recalibrated, data["images"][:32], steps=None)
        for i, s in enumerate(batch_norm_statistics(recalibrated)):
            arrays[f"{name}/recalibrated/{i}"] = s
        history = fit(keras, compiled(keras, model, jit_compile=False), data)
        arrays[f"{name}/trained_qconv_kernel"] = np.asarray(model.get_layer("qconv").kernel)
        report["quantizers"][name] = {"loss": history.history["loss"], "weights": len(model.get_weights())}
    report["scheduler_in_fit"] = {f: scheduler_probe(keras, m, data, f) for f in ("epoch", "batch")}
    np.savez(os.path.join(tmp, "tensorflow.npz"), **arrays)
    return report


def stub_package():
    """tfbin.keras3's modules without its `__init__` (which refuses a backend other than TensorFlow)."""
    import types

    import tfbin

    package = types.ModuleType("tfbin.keras3")
    package.__path__ = [os.path.join(os.path.dirname(tfbin.__file__), "keras3")]
    sys.modules["tfbin.keras3"] = package
    tfbin.keras3 = package


def jax_modules():
    """Keras on JAX and tfbin.keras3's modules past the guard: `(keras, jax, m, import report)`."""
    import tensorflow  # noqa: F401  (first: TensorFlow with Keras 3, so `import tfbin` loads no Keras 2 API)
    import jax
    import keras

    assert keras.backend.backend() == "jax", keras.backend.backend()
    public = attempt({}, lambda: {"module": __import__("tfbin.keras3").keras3.__name__})
    sys.modules.pop("tfbin.keras3", None)
    stub_package()
    import importlib

    loaded = {name: attempt({}, lambda name=name: {"module": importlib.import_module(f"tfbin.keras3.{name}").__name__})
              for name in MODULES}
    m = argparse.Namespace(**{name: sys.modules[f"tfbin.keras3.{name}"] for name in MODULES if loaded[name]["passed"]})
    return keras, jax, m, {"import tfbin.keras3": public, "modules past the guard": loaded}


def compare(result, got, expected):
    """`passed` when `got` is a JAX array within ATOL of TensorFlow's `expected`."""
    import jax

    diff = max_diff(got, expected)
    is_jax = isinstance(got, jax.Array)
    result.update(max_abs_diff=diff, output_type=f"{type(got).__module__}.{type(got).__name__}",
                  passed=bool(is_jax and diff <= ATOL))
    if not is_jax:
        result["note"] = "ran, but the output is not a JAX array (TensorFlow ops computed it eagerly)"
    return result


def quantizer_checks(keras, jax, m, case, data, ref):
    import jax.numpy as jnp

    name, x = case["name"], jnp.asarray(data[case["on"]])
    checks = {}
    checks["forward_eager"] = attempt({}, lambda: compare({}, quantizer(m, case, x.shape)(x), ref[f"{name}/value"]))

    def jitted():
        q = quantizer(m, case, x.shape)
        return compare({}, jax.jit(lambda a: q(a))(x), ref[f"{name}/value"])

    checks["forward_jit"] = attempt({}, jitted)

    def grad():
        q = quantizer(m, case, x.shape)
        result = compare({}, jax.grad(lambda a: jnp.sum(q(a)))(x), ref[f"{name}/grad"])
        result["max_abs_grad_diff"] = result.pop("max_abs_diff")
        return result

    checks["jax_grad"] = attempt({}, grad)
    if case["cls"] in SOFT_HARD:
        def hard():
            q = quantizer(m, case, x.shape)
            q.hard_mode = True
            return compare({}, jax.jit(lambda a: q(a))(x), ref[f"{name}/hard"])

        checks["hard_forward_jit"] = attempt({}, hard)
    initial = [ref[f"{name}/initial/{i}"] for i in range(len([k for k in ref if k.startswith(f"{name}/initial/")]))]
    tf_loss = ref["report"]["quantizers"][name]["loss"]
    trained = {}

    def train(jit_compile):
        def run():
            model = tiny_net(keras, m, case)
            model.set_weights(initial)
            compiled(keras, model, jit_compile)
            losses = fit(keras, model, data).history["loss"]
            kernel = np.asarray(model.get_layer("qconv").kernel)
            moved = max_diff(kernel, initial[[w.path for w in model.weights].index(model.get_layer("qconv").kernel.path)])
            trained[jit_compile] = model
            return {"jit_compile": model.jit_compile, "loss": losses, "tensorflow_loss": tf_loss,
                    "max_abs_loss_diff": max_diff(losses, tf_loss),
                    "max_abs_qconv_kernel_diff": max_diff(kernel, ref[f"{name}/trained_qconv_kernel"]),
                    "passed": bool(np.all(np.isfinite(losses)) and moved > 0 and max_diff(losses, tf_loss) <= LOSS_ATOL)}

        return run

    checks["fit_jit_default"] = attempt({}, train(None))
    checks["fit_jit_false"] = attempt({}, train(False))

    def recalibrate():
        model = tiny_net(keras, m, case)
        model.set_weights(initial)
        m.recalibration.recalibrate(model, data["images"][:32], steps=None)
        statistics = batch_norm_statistics(model)
        expected = [ref[f"{name}/recalibrated/{i}"] for i in range(len(statistics))]
        return {"max_abs_bn_statistics_diff": max(max_diff(a, b) for a, b in zip(statistics, expected)),
                "max_rel_bn_statistics_diff": max(max_diff(a, b) / max(float(np.abs(b).max()), 1e-30)
                                                  for a, b in zip(statistics, expected)),
                "passed": all(np.allclose(a, b, rtol=RTOL, atol=ATOL) for a, b in zip(statistics, expected)),
                "note": "eager calls (recalibrate runs the model outside jit)"}

    checks["recalibrate"] = attempt({}, recalibrate)
    return checks, trained.get(None) or trained.get(False)


def worker_jax(tmp, probe=False):
    keras, jax, m, imports = jax_modules()
    data = dict(np.load(os.path.join(tmp, "inputs.npz")))
    ref = dict(np.load(os.path.join(tmp, "tensorflow.npz")))
    with open(os.path.join(tmp, "tensorflow.json")) as f:
        ref["report"] = json.load(f)
    report = {"imports": imports}
    if not probe:
        def filtered():  # Keras's default traceback filtering, on the first failing call
            q = quantizer(m, cases(["SteSign"])[0], data["activation"].shape)
            jax.jit(lambda a: q(a))(data["activation"])
            return {"passed": True}

        report["with_keras_traceback_filtering"] = attempt({}, filtered)
    keras.config.disable_traceback_filtering()
    if probe:
        patch_proposed_fix(keras, m)
    chosen = cases(LARQ_TWINS if probe else None)
    report["quantizers"], trained = {}, {}
    for case in chosen:
        report["quantizers"][case["name"]], model = quantizer_checks(keras, jax, m, case, data, ref)
        if model is not None:
            trained[case["name"]] = model
    if probe:
        report["scheduler_in_fit"] = {f: attempt({}, lambda f=f: scheduler_probe(keras, m, data, f)) for f in ("epoch", "batch")}
        report["scheduler_in_fit"]["batch, with SCHEDULER_FIX"] = attempt(
            {}, lambda: scheduler_probe(keras, m, data, "batch", sync=True))
        saved = {}
        for name, model in trained.items():
            path = os.path.join(tmp, f"{name}.weights.h5")
            model.save_weights(path)
            saved[name] = path
            with m.hard_form.hard(model):
                np.save(os.path.join(tmp, f"{name}.hard_outputs.npy"), np.asarray(model.predict(data["images"], verbose=0)))
        report["saved"] = saved
    else:
        report["scheduler_outside_fit"] = attempt({}, lambda: scheduler_outside_fit(keras, m, data))
    return report


def scheduler_outside_fit(keras, m, data):
    """SharpeningScheduler's assignments on a tfbin EDESign net built on JAX, driven by hand."""
    from tfbin import schedules

    model = tiny_net(keras, m, cases(["EDESign"])[0])
    found = schedules.ede(0.1, 10.0, epochs=4)
    scheduler = m.sharpening.SharpeningScheduler(found)
    scheduler.set_model(model)
    scheduler.set_params({"epochs": 4, "steps": 4})
    scheduler.on_train_begin()
    scheduler.on_epoch_begin(2)
    logs = {}
    scheduler.on_epoch_end(2, logs)
    expected = {name: s(2) for name, s in found.items()}
    return {"logged": logs, "expected": expected,
            "passed": all(abs(logs[n] - v) <= 1e-6 * max(1.0, abs(v)) for n, v in expected.items())}


def patch_proposed_fix(keras, m):
    """The probe: keras.ops versions of what the larq twins call (see PROPOSED_FIX)."""
    from tfbin import formulas

    def sign(x):
        return keras.ops.sign(keras.ops.sign(x) + 0.1)

    def ste_sign(x, clip_value=1.0):
        @keras.ops.custom_gradient
        def _call(x):
            def grad(dy):
                if clip_value is None:
                    return dy
                return keras.ops.where(keras.ops.less_equal(keras.ops.abs(x), clip_value), dy, keras.ops.zeros_like(dy))

            return sign(x), grad

        return _call(x)

    formulas.sign, formulas.ste_sign = sign, ste_sign
    m.binary_quantizers.as_tensor = keras.ops.convert_to_tensor


def worker_export(tmp):
    keras, tb, m = tensorflow_modules()
    data = dict(np.load(os.path.join(tmp, "inputs.npz")))
    with open(os.path.join(tmp, "jax-probe.json")) as f:
        saved = json.load(f).get("saved", {})
    found = {}
    for name, path in saved.items():
        def run(name=name, path=path):
            model = tiny_net(keras, m, cases([name])[0])
            model.load_weights(path)
            with tb.hard(model):
                outputs = np.asarray(model.predict(data["images"], verbose=0))
            flatbuffer = tb.convert(model)
            histogram = tb.op_histogram(flatbuffer)
            verified = tb.verify(model, flatbuffer, data["images"])
            diff = max_diff(outputs, np.load(os.path.join(tmp, f"{name}.hard_outputs.npy")))
            return {"max_abs_hard_output_diff_jax_vs_tensorflow": diff, "LceBconv2d": histogram.get("LceBconv2d", 0),
                    "verify_passed": bool(verified["passed"]), "tie_free_fraction": verified.get("tie_free_fraction"),
                    "passed": bool(verified["passed"]) and histogram.get("LceBconv2d", 0) == 2 and diff <= 1e-4}

        found[name] = attempt({}, run)
    return {"export": found}


WORKERS = {"tensorflow": ("tensorflow", worker_tensorflow), "jax": ("jax", worker_jax),
           "jax-probe": ("jax", lambda tmp: worker_jax(tmp, probe=True)), "export": ("tensorflow", worker_export)}


# ---------------------------------------------------------------------------------------------
# The run


def run_worker(name, tmp) -> dict:
    env = {**os.environ, "KERAS_BACKEND": WORKERS[name][0], "TF_CPP_MIN_LOG_LEVEL": "2", "JAX_PLATFORMS": "cpu",
           "JAX_TRACEBACK_FILTERING": "off",
           "CUDA_VISIBLE_DEVICES": ""}
    start = time.perf_counter()
    done = subprocess.run([sys.executable, os.path.abspath(__file__), "--worker", name, "--tmp", tmp], env=env,
                          capture_output=True, text=True)
    seconds = round(time.perf_counter() - start, 1)
    path = os.path.join(tmp, f"{name}.json")
    if done.returncode != 0 or not os.path.exists(path):
        raise RuntimeError(f"worker {name} failed (exit {done.returncode}):\n{done.stderr[-4000:]}")
    with open(path) as f:
        report = json.load(f)
    report["wall_seconds"] = seconds
    return report


def versions() -> dict:
    found = {"python": platform.python_version()}
    for package in ("jax", "jaxlib", "keras", "tensorflow", "numpy", "larq-compute-engine"):
        try:
            found[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            found[package] = None
    return found


def summary(jax_report, probe_report) -> dict:
    def table(report):
        return {name: {check: r["passed"] for check, r in checks.items()} for name, checks in report["quantizers"].items()}

    return {"import tfbin.keras3 under jax": jax_report["imports"]["import tfbin.keras3"]["passed"],
            "passed, the repository as it is (past the import guard)": table(jax_report),
            "passed, larq twins with the proposed fix (probe)": table(probe_report),
            "probe max |jax.grad - TensorFlow gradient|": {
                name: checks["jax_grad"].get("max_abs_grad_diff") for name, checks in probe_report["quantizers"].items()},
            "SharpeningScheduler in fit on JAX (probe quantizer), update_freq": {
                f: r["passed"] for f, r in probe_report["scheduler_in_fit"].items()}}


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", default=OUT)
    parser.add_argument("--worker", choices=sorted(WORKERS), help=argparse.SUPPRESS)
    parser.add_argument("--tmp", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        report = WORKERS[args.worker][1](args.tmp)
        with open(os.path.join(args.tmp, f"{args.worker}.json"), "w") as f:
            json.dump(report, f, default=float)
        return
    start = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="keras3_jax.") as tmp:
        np.savez(os.path.join(tmp, "inputs.npz"), **inputs())
        reports = {name: run_worker(name, tmp) for name in ("tensorflow", "jax", "jax-probe", "export")}
    jax_report, probe_report = reports["jax"], reports["jax-probe"]
    for name, checks in jax_report["quantizers"].items():
        checks["export"] = {"passed": False, "error": "not run: exported are the nets the probe trained on JAX"}
    for name, checks in probe_report["quantizers"].items():
        checks["export"] = reports["export"]["export"].get(name, {"passed": False, "error": "not run: no JAX-trained weights"})
    probe_report.pop("saved", None)
    result = {
        "command": "python bench/keras3_jax.py",
        "date": time.strftime("%Y-%m-%d"),
        "versions": versions(),
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform()},
        "protocol": {"atol": ATOL, "rtol_bn_statistics": RTOL, "loss_atol": LOSS_ATOL, "images": IMAGES,
                     "batch": BATCH, "epochs": EPOCHS, "lr": LR,
                     "tensorflow_reference_jit_compile": False,
                     "cases": {c["name"]: {"class": c["cls"], "kwargs": c["kwargs"], "quantizes": c["on"],
                                           "sharpness": c["sharpness"], "tiny_net_input_kernel": list(c["slots"])}
                               for c in cases()}},
        "summary": summary(jax_report, probe_report),
        "jax": jax_report,
        "probe": {"proposed_fix": PROPOSED_FIX, "scheduler_fix": SCHEDULER_FIX, **probe_report},
        "tensorflow_reference": {"scheduler_in_fit": reports["tensorflow"]["scheduler_in_fit"],
                                 "loss": {n: r["loss"] for n, r in reports["tensorflow"]["quantizers"].items()},
                                 "wall_seconds": reports["tensorflow"]["wall_seconds"]},
        "export_wall_seconds": reports["export"]["wall_seconds"],
        "wall_seconds": round(time.perf_counter() - start, 1),
    }
    import tensorflow  # noqa: F401  (first: `import tfbin` then loads no Keras 2 API, which this venv may lack)

    from tfbin import _io

    _io.write_text_atomic(args.out, json.dumps(result, indent=1, default=float) + "\n")
    print(json.dumps(result["summary"], indent=1))
    print(f"wrote {os.path.relpath(args.out, ROOT)} in {result['wall_seconds']} s")


if __name__ == "__main__":
    main()
