"""A quantizer's value and gradient at given inputs, for the tests of both Keras paths."""
import tensorflow as tf


def value_and_grad(quantizer, x):
    """`quantizer(x)` and d(sum quantizer(x))/dx, as NumPy arrays."""
    x = tf.convert_to_tensor(x, tf.float32)
    with tf.GradientTape() as tape:
        tape.watch(x)
        y = quantizer(x)
    return y.numpy(), tape.gradient(y, x).numpy()
