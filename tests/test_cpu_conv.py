"""The CPU convolutions equal XLA's: every formulation of every pass (forward, input gradient, weight gradient)
for every conv shape the backbones use (kernel 1/3/7, stride 1/2, padding 0/1, dense and depthwise), float32
and bfloat16; the plan each layer shape gets; and the platform deciding which convolution runs."""

import functools
import itertools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax import lax

from jsphere.models import cpu_conv

# (kernel, stride, padding, groups): every kind of convolution of SFNet, IResNet and MobileFaceNet ("pairs":
# groups of 2 channels, MobileFaceNet's second block)
SHAPES = [(3, 1, 1, "dense"), (3, 2, 1, "dense"), (1, 2, 0, "dense"), (1, 1, 0, "dense"), (3, 1, 0, "dense"),
          (3, 2, 0, "dense"), (3, 1, 1, "depthwise"), (3, 2, 1, "depthwise"), (7, 1, 0, "depthwise"),
          (3, 1, 1, "pairs")]
# float32: the same products summed in another order; the error is a few ulps of the sum's largest terms, far
# below 1e-5 of the largest output or gradient. bfloat16 inputs: both sides round the result to bf16 (8 bits),
# so they may differ by one bf16 ulp of the largest magnitudes, 2**-8.
TOLERANCE = {jnp.float32: 1e-5, jnp.bfloat16: 2 ** -7}


def _case(kernel, stride, padding, kind, dtype, spatial=9, channels=8, out_channels=10):
    rng = np.random.default_rng(kernel * 10 + stride)  # NumPy draws: jax.random compiles for seconds per shape
    x = jnp.asarray(rng.standard_normal((2, spatial, spatial, channels), np.float32)).astype(dtype)
    groups = {"dense": 1, "depthwise": channels, "pairs": channels // 2}[kind]
    cout = out_channels if kind == "dense" else channels
    if kind == "depthwise" and kernel == 7:
        x = x[:, :7, :7]  # MobileFaceNet's GDC: a 7x7 depthwise over the 7x7 map
    w = jnp.asarray(rng.standard_normal((kernel, kernel, channels // groups, cout), np.float32)).astype(dtype)
    args = dict(window_strides=(stride, stride), padding=((padding, padding), (padding, padding)),
                dimension_numbers=cpu_conv.NHWC, feature_group_count=groups)
    return x, w, args, rng


def _cotangent(rng, shape, dtype):
    return jnp.asarray(rng.standard_normal(shape, np.float32)).astype(dtype)


def _assert_close(a, b, tol):
    a, b = np.asarray(a, np.float32), np.asarray(b, np.float32)
    assert a.shape == b.shape
    assert np.max(np.abs(a - b)) <= tol * np.max(np.abs(b)), np.max(np.abs(a - b)) / np.max(np.abs(b))


@pytest.mark.parametrize("dtype", [jnp.float32, jnp.bfloat16], ids=["fp32", "bf16"])
@pytest.mark.parametrize(("kernel", "stride", "padding", "kind"), SHAPES)
def test_outputs_and_gradients_equal_xla(kernel, stride, padding, kind, dtype):
    """What the backbones get by default: the plan of each shape, through the custom VJP."""
    x, w, args, rng = _case(kernel, stride, padding, kind, dtype)
    ref = lax.conv_general_dilated(x, w, **args)
    ours = jax.jit(lambda x, w: cpu_conv.cpu_conv_general_dilated(x, w, **args))(x, w)
    _assert_close(ours, ref, TOLERANCE[dtype])
    cotangent = _cotangent(rng, ref.shape, dtype)

    def grads(conv):
        return jax.jit(jax.vjp(lambda x, w: conv(x, w, **args), x, w)[1])(cotangent)

    for g_ours, g_ref in zip(grads(cpu_conv.cpu_conv_general_dilated), grads(lax.conv_general_dilated),
                             strict=True):
        assert g_ours.dtype == g_ref.dtype
        _assert_close(g_ours, g_ref, TOLERANCE[dtype])


@pytest.mark.parametrize("dtype", [jnp.float32, jnp.bfloat16], ids=["fp32", "bf16"])
@pytest.mark.parametrize(("kernel", "stride", "padding", "spatial"), [(3, 1, 1, 9), (3, 1, 2, 12), (3, 1, 0, 12),
                                                                       (3, 2, 1, 9), (3, 2, 0, 12), (1, 2, 0, 9),
                                                                       (7, 2, 3, 12)])
def test_every_formulation_of_every_pass_equals_xla(kernel, stride, padding, spatial, dtype):
    """Each pass by each formulation that applies, on odd and even map sizes (Winograd's 2x2 tiles and the
    stride-2 phases both crop a partial last tile or phase)."""
    x, w, args, rng = _case(kernel, stride, padding, "dense", dtype, spatial=spatial)
    strides, pads = args["window_strides"], args["padding"]
    ref, vjp = jax.vjp(lambda x, w: lax.conv_general_dilated(x, w, **args), x, w)
    dy = _cotangent(rng, ref.shape, dtype)
    ref_dx, ref_dw = vjp(dy)
    forwards, input_grads, weight_grads = cpu_conv.formulations(kernel, stride)
    for kind in forwards:
        y = jax.jit(functools.partial(cpu_conv.forward_pass, strides=strides, pads=pads, kind=kind))(x, w)
        _assert_close(y, ref, TOLERANCE[dtype])
    for passes, kinds, ref_grad in ((cpu_conv.input_grad_pass, input_grads, ref_dx),
                                    (cpu_conv.weight_grad_pass, weight_grads, ref_dw)):
        for kind in kinds:
            grad = jax.jit(functools.partial(passes, strides=strides, pads=pads, kind=kind))(x, w, dy)
            assert grad.dtype == ref_grad.dtype
            _assert_close(grad, ref_grad, TOLERANCE[dtype])


def test_a_plan_runs_each_of_its_passes_through_the_custom_vjp():
    x, w, args, rng = _case(3, 1, 1, "dense", jnp.float32, spatial=12)
    strides, pads = args["window_strides"], args["padding"]
    ref, vjp = jax.vjp(lambda x, w: lax.conv_general_dilated(x, w, **args), x, w)
    dy = _cotangent(rng, ref.shape, jnp.float32)
    for forward, input_grad, weight_grad in itertools.product(*cpu_conv.formulations(3, 1)):
        plan = cpu_conv.ConvPlan(forward, input_grad, weight_grad)
        out, ours = jax.vjp(lambda x, w, p=plan: cpu_conv.dense_conv(x, w, strides, pads, p), x, w)
        _assert_close(out, ref, 1e-5)
        for g_ours, g_ref in zip(ours(dy), vjp(dy), strict=True):
            _assert_close(g_ours, g_ref, 1e-5)


def test_each_layer_shape_gets_the_measured_plan():
    plan = cpu_conv.plan
    same, valid = ((1, 1), (1, 1)), ((0, 0), (0, 0))
    assert plan((32, 56, 56, 64), (3, 3, 64, 64), (1, 1), same, 1) == ("winograd", "winograd", "winograd")
    assert plan((16, 112, 112, 64), (3, 3, 64, 64), (1, 1), same, 1) == ("winograd", "winograd", "winograd")
    assert plan((16, 14, 14, 256), (3, 3, 256, 256), (1, 1), same, 1) == ("winograd", "winograd", "winograd")
    assert plan((16, 7, 7, 512), (3, 3, 512, 512), (1, 1), same, 1) == ("winograd", "winograd", "winograd")
    assert plan((16, 4, 4, 512), (3, 3, 512, 512), (1, 1), same, 1) == ("xla", "xla", "winograd")  # tiny maps
    assert plan((16, 112, 112, 3), (3, 3, 3, 64), (1, 1), same, 1) == ("xla", "winograd", "im2col")  # RGB stem
    assert plan((64, 56, 56, 64), (3, 3, 64, 128), (2, 2), same, 1) == ("xla", "phases", "im2col")
    assert plan((64, 112, 112, 3), (3, 3, 3, 64), (2, 2), same, 1) == ("xla", "xla", "im2col")
    assert plan((8, 56, 56, 64), (1, 1, 64, 128), (2, 2), valid, 1) == ("pointwise", "autodiff", "autodiff")
    assert plan((8, 7, 7, 512), (7, 7, 1, 512), (1, 1), valid, 512) == ("shifted", "autodiff", "autodiff")
    assert plan((8, 56, 56, 128), (3, 3, 2, 128), (1, 1), same, 64) == ("shifted", "autodiff", "autodiff")
    assert plan((8, 56, 56, 256), (3, 3, 32, 256), (1, 1), same, 8) == cpu_conv.XLA  # 32x32 channels per group
    assert plan((8, 56, 56, 64), (3, 3, 64, 64), (1, 1), ((-1, 0), (0, 0)), 1) == cpu_conv.XLA


def test_the_platform_chooses_the_convolution():
    assert cpu_conv.conv_for("cpu") is cpu_conv.cpu_conv_general_dilated
    for platform in ("cuda", "rocm", "tpu"):
        assert cpu_conv.conv_for(platform) is lax.conv_general_dilated


def test_a_gpu_lowering_keeps_xla_convolutions_and_a_cpu_lowering_matrix_products():
    """The same jitted weight gradient, lowered for each platform: on the GPU the forward and the weight
    gradient are XLA convolutions (cuDNN's), on the CPU the weight gradient is a matrix product."""
    x, w, args, _ = _case(3, 2, 1, "dense", jnp.float32)
    traced = jax.jit(jax.grad(lambda w: jnp.sum(cpu_conv.conv_general_dilated(x, w, **args) ** 2))).trace(w)
    gpu = traced.lower(lowering_platforms=("cuda",)).as_text()
    cpu = traced.lower(lowering_platforms=("cpu",)).as_text()
    assert gpu.count("stablehlo.convolution") == 2 and "dot_general" not in gpu
    assert cpu.count("stablehlo.convolution") == 1 and cpu.count("stablehlo.dot_general") == 1


def test_unsupported_forms_fall_back_to_xla():
    x, w, args, _ = _case(3, 1, 1, "dense", jnp.float32)
    for unsupported in (dict(args, rhs_dilation=(2, 2)), dict(args, padding=((-1, 1), (1, 1))),
                        dict(args, lhs_dilation=(2, 2))):
        np.testing.assert_array_equal(cpu_conv.cpu_conv_general_dilated(x, w, **unsupported),
                                      lax.conv_general_dilated(x, w, **unsupported))
    wide = _cotangent(np.random.default_rng(3), (3, 3, 4, 16), jnp.float32)  # 2 groups of 4x8 channels: XLA's
    grouped = dict(args, feature_group_count=2)
    np.testing.assert_array_equal(cpu_conv.cpu_conv_general_dilated(x, wide, **grouped),
                                  lax.conv_general_dilated(x, wide, **grouped))
