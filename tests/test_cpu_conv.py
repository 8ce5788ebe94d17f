"""The CPU convolutions equal XLA's: outputs, input and weight gradients for every conv shape the backbones use
(kernel 1/3/7, stride 1/2, padding 0/1, dense and depthwise), float32 and bfloat16; and the platform decides
which one runs."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax import lax

from jsphere.models import cpu_conv

# (kernel, stride, padding, groups): every kind of convolution of SFNet, IResNet and MobileFaceNet ("pairs":
# groups of 2 channels, MobileFaceNet's second block)
SHAPES = [(3, 1, 1, "dense"), (3, 2, 1, "dense"), (1, 2, 0, "dense"), (1, 1, 0, "dense"), (3, 1, 0, "dense"),
          (3, 1, 1, "depthwise"), (3, 2, 1, "depthwise"), (7, 1, 0, "depthwise"), (3, 1, 1, "pairs")]
# float32: the same products summed in another order; the error is a few ulps of the sum's largest terms, far
# below 1e-5 of the largest output or gradient. bfloat16 inputs: both sides round the result to bf16 (8 bits),
# so they may differ by one bf16 ulp of the largest magnitudes, 2**-8.
TOLERANCE = {jnp.float32: 1e-5, jnp.bfloat16: 2 ** -7}


def _case(kernel, stride, padding, kind, dtype, spatial=9, channels=6, out_channels=5):
    kx, kw, kd = jax.random.split(jax.random.key(kernel * 10 + stride), 3)
    x = jax.random.normal(kx, (2, spatial, spatial, channels), jnp.float32).astype(dtype)
    groups = {"dense": 1, "depthwise": channels, "pairs": channels // 2}[kind]
    cout = out_channels if kind == "dense" else channels
    if kind == "depthwise" and kernel == 7:
        x = x[:, :7, :7]  # MobileFaceNet's GDC: a 7x7 depthwise over the 7x7 map
    w = jax.random.normal(kw, (kernel, kernel, channels // groups, cout), jnp.float32).astype(dtype)
    args = dict(window_strides=(stride, stride), padding=((padding, padding), (padding, padding)),
                dimension_numbers=cpu_conv.NHWC, feature_group_count=groups)
    return x, w, args, kd


def _assert_close(a, b, tol):
    a, b = np.asarray(a, np.float32), np.asarray(b, np.float32)
    assert a.shape == b.shape
    assert np.max(np.abs(a - b)) <= tol * np.max(np.abs(b)), np.max(np.abs(a - b)) / np.max(np.abs(b))


@pytest.mark.parametrize("dtype", [jnp.float32, jnp.bfloat16], ids=["fp32", "bf16"])
@pytest.mark.parametrize(("kernel", "stride", "padding", "kind"), SHAPES)
def test_outputs_and_gradients_equal_xla(kernel, stride, padding, kind, dtype):
    x, w, args, kd = _case(kernel, stride, padding, kind, dtype)
    ref = lax.conv_general_dilated(x, w, **args)
    ours = jax.jit(lambda x, w: cpu_conv.cpu_conv_general_dilated(x, w, **args))(x, w)
    _assert_close(ours, ref, TOLERANCE[dtype])
    cotangent = jax.random.normal(kd, ref.shape, jnp.float32).astype(dtype)

    def grads(conv):
        return jax.jit(jax.vjp(lambda x, w: conv(x, w, **args), x, w)[1])(cotangent)

    for g_ours, g_ref in zip(grads(cpu_conv.cpu_conv_general_dilated), grads(lax.conv_general_dilated),
                             strict=True):
        assert g_ours.dtype == g_ref.dtype
        _assert_close(g_ours, g_ref, TOLERANCE[dtype])


def test_the_platform_chooses_the_convolution():
    assert cpu_conv.conv_for("cpu") is cpu_conv.cpu_conv_general_dilated
    for platform in ("cuda", "rocm", "tpu"):
        assert cpu_conv.conv_for(platform) is lax.conv_general_dilated


def test_a_cpu_lowering_computes_weight_gradients_as_matrix_products():
    """XLA's weight gradient is a convolution over the batch; on the CPU it becomes one dot per kernel tap."""
    x, w, args, _ = _case(3, 1, 1, "dense", jnp.float32)
    weight_grad = jax.jit(jax.grad(lambda w: jnp.sum(cpu_conv.conv_general_dilated(x, w, **args) ** 2)))
    hlo = weight_grad.lower(w).compile().as_text()
    assert hlo.count(" dot(") >= 9 and " conditional(" not in hlo
    assert hlo.count(" convolution(") == 1  # the forward stays XLA's


def test_unsupported_forms_fall_back_to_xla():
    x, w, args, _ = _case(3, 1, 1, "dense", jnp.float32)
    dilated = dict(args, rhs_dilation=(2, 2))
    np.testing.assert_array_equal(cpu_conv.cpu_conv_general_dilated(x, w, **dilated),
                                  lax.conv_general_dilated(x, w, **dilated))
