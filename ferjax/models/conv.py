"""3x3 SAME convolutions, selectable: "xla", "matmul" or "lax" ("auto": "xla" on CPU, "lax"
on GPU/TPU; see `ferjax.models.resolve_conv`). All own the same parameters ('kernel'
(3,3,Cin,Cout), 'bias'), so checkpoints move between them.

* "lax": flax's nn.Conv and nn.max_pool, the right choice on GPU/TPU.
* "xla": XLA's convolution again, with the reshape max-pool (nn.max_pool's gradient is a slow
  scatter on CPU) and a vmap rule for sweeps (below); the CPU default (benchmarks/README.md
  compares the three).
* "matmul": im2col patches and one matrix product, so forward, input gradient and weight
  gradient are all GEMMs and a vmapped sweep batches them as batched GEMMs; it was the
  fastest CPU path with older XLA:CPU convolutions.
"""
from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp

from ferjax.devices import use_eigen_convolutions

KERNEL_INIT = nn.initializers.glorot_uniform()   # the FERPlus reference's initialiser


def im2col3x3(x: jax.Array) -> jax.Array:
    """(B,H,W,C) -> (B,H,W,9C) patches of a 3x3 SAME (zero-padded) window, (dy,dx,c) order."""
    h, w = x.shape[1], x.shape[2]
    xp = jnp.pad(x, ((0, 0), (1, 1), (1, 1), (0, 0)))
    return jnp.concatenate([xp[:, i:i + h, j:j + w, :] for i in range(3) for j in range(3)], axis=-1)


def conv3x3_matmul(x: jax.Array, kernel: jax.Array) -> jax.Array:
    b, h, w, c = x.shape
    patches = im2col3x3(x).reshape(b * h * w, 9 * c)
    y = jnp.dot(patches, kernel.reshape(9 * c, -1), preferred_element_type=x.dtype)
    return y.reshape(b, h, w, -1)


# ---------------------------------------------------------------- "xla"
# XLA's own convolution, as "lax", with the reshape max-pool of "matmul". XLA:CPU runs a
# convolution and both its gradients faster than im2col GEMMs, with Eigen (asked for here,
# before JAX starts) faster than with YNNPACK, jaxlib 0.10's default. Vmapped over
# stacked weights (a sweep), `lax.conv` would become one grouped convolution, which XLA:CPU
# runs slowly; here each of the three convolutions (forward, input gradient, weight gradient)
# is a custom_vmap that runs one ordinary convolution per member instead, and a custom_vjp
# ties them together (custom_vmap functions cannot be differentiated themselves). Unbatched,
# the forward and input gradient are what autodiff of `lax.conv` emits; the weight gradient
# is GEMMs where those are faster (`kernel_grad_method`).

_DN = ("NHWC", "HWIO", "NHWC")


def _conv(x: jax.Array, kernel: jax.Array) -> jax.Array:
    return jax.lax.conv_general_dilated(x, kernel, (1, 1), "SAME", dimension_numbers=_DN)


def _conv_input_grad(g: jax.Array, kernel: jax.Array) -> jax.Array:
    x = jax.ShapeDtypeStruct(g.shape[:-1] + (kernel.shape[2],), g.dtype)
    return jax.linear_transpose(lambda x: _conv(x, kernel), x)(g)[0]


EIGEN_CONVOLUTIONS = use_eigen_convolutions()


def kernel_grad_method(height: int, width: int, channels_in: int,
                       eigen: bool = EIGEN_CONVOLUTIONS) -> str:
    """How the weight gradient of a 3x3 convolution on (height, width, channels_in) inputs is
    computed, a choice measured per layer of both models and in their training steps
    (benchmarks/README.md, "Weight gradients"). Under 4 input channels, one im2col GEMM. Else
    XLA:CPU's own convolution for it (a window as large as the image) when it is Eigen's; with
    YNNPACK's, nine GEMMs over the batch's pixels, one per kernel tap, are faster on 8x8 to
    32x32 images, and at 4x4, and at 64x64 with many channels (where im2col's patches would
    take 9x the input's memory), the convolution holds its own."""
    pixels = height * width
    if channels_in < 4 and pixels >= 64:
        return "im2col"
    return "shifted" if not eigen and 64 <= pixels <= 1024 else "conv"


def _kernel_grad_by_conv(x: jax.Array, g: jax.Array) -> jax.Array:
    kernel = jax.ShapeDtypeStruct((3, 3, x.shape[-1], g.shape[-1]), x.dtype)
    return jax.linear_transpose(lambda k: _conv(x, k), kernel)(g)[0]


def _kernel_grad_by_im2col(x: jax.Array, g: jax.Array) -> jax.Array:
    b, h, w, c = x.shape
    patches = im2col3x3(x).reshape(b * h * w, 9 * c)
    return jnp.dot(patches.T, g.reshape(b * h * w, -1)).reshape(3, 3, c, -1)


def _kernel_grad_by_shifted(x: jax.Array, g: jax.Array) -> jax.Array:
    b, h, w, c = x.shape
    xp = jnp.pad(x, ((0, 0), (1, 1), (1, 1), (0, 0)))
    g2 = g.reshape(b * h * w, -1)
    return jnp.stack([jnp.dot(xp[:, i:i + h, j:j + w, :].reshape(b * h * w, c).T, g2)
                      for i in range(3) for j in range(3)]).reshape(3, 3, c, -1)


KERNEL_GRADS = {"conv": _kernel_grad_by_conv, "im2col": _kernel_grad_by_im2col,
                "shifted": _kernel_grad_by_shifted}


def _conv_kernel_grad(x: jax.Array, g: jax.Array) -> jax.Array:
    return KERNEL_GRADS[kernel_grad_method(*x.shape[1:])](x, g)


def _per_member(fn):
    """fn, which vmapped runs once per member (stacked results) instead of batching fn's ops."""
    f = jax.custom_batching.custom_vmap(fn)

    @f.def_vmap
    def rule(axis_size, in_batched, *args):
        member = lambda i: [a[i] if b else a for a, b in zip(args, in_batched)]  # noqa: E731
        return jnp.stack([f(*member(i)) for i in range(axis_size)]), True
    return f


_conv_pm = _per_member(_conv)
_input_grad_pm = _per_member(_conv_input_grad)
_kernel_grad_pm = _per_member(_conv_kernel_grad)


@jax.custom_vjp
def conv3x3_xla(x: jax.Array, kernel: jax.Array) -> jax.Array:
    """3x3 SAME convolution (NHWC, HWIO) by XLA; vmaps to one convolution per member."""
    return _conv_pm(x, kernel)


def _conv3x3_xla_fwd(x, kernel):
    return _conv_pm(x, kernel), (x, kernel)


def _conv3x3_xla_bwd(res, g):
    x, kernel = res
    return _input_grad_pm(g, kernel), _kernel_grad_pm(x, g)


conv3x3_xla.defvjp(_conv3x3_xla_fwd, _conv3x3_xla_bwd)


_CONV_FNS = {"matmul": conv3x3_matmul, "xla": conv3x3_xla}
CONV_IMPLS = ("matmul", "lax", "xla")


class Conv3x3(nn.Module):
    """3x3 SAME convolution + bias by `impl`, with nn.Conv's parameter names and shapes."""
    features: int
    impl: str

    @nn.compact
    def __call__(self, x):
        kernel = self.param("kernel", KERNEL_INIT, (3, 3, x.shape[-1], self.features))
        bias = self.param("bias", nn.initializers.zeros, (self.features,))
        return _CONV_FNS[self.impl](x, kernel) + bias


def conv3x3(features: int, impl: str, name: str) -> nn.Module:
    if impl in _CONV_FNS:
        return Conv3x3(features, impl, name=name)
    if impl == "lax":
        return nn.Conv(features, (3, 3), padding="SAME", kernel_init=KERNEL_INIT, name=name)
    raise ValueError(f"unknown conv implementation {impl!r}; choose one of {', '.join(CONV_IMPLS)}")


def max_pool2(x: jax.Array, impl: str) -> jax.Array:
    """2x2/2 max pooling. The reshape form avoids reduce_window's slow scatter gradient on CPU."""
    if impl == "lax":
        return nn.max_pool(x, (2, 2), strides=(2, 2))
    return max_pool2_reshape(x)


def _windows(x: jax.Array) -> jax.Array:
    b, h, w, c = x.shape
    return x.reshape(b, h // 2, 2, w // 2, 2, c)


# Autodiff of a max reduction divides the gradient among tied inputs, which costs a count and
# a division per window, a large share of the light model's training step on XLA:CPU
# (benchmarks/README.md, "Convolution library"). Here every input equal to its window's max
# gets the gradient. Both models pool after a ReLU, so the
# only ties in practice are zeros, whose gradient the ReLU then drops.
@jax.custom_vjp
def max_pool2_reshape(x: jax.Array) -> jax.Array:
    return _windows(x).max(axis=(2, 4))


def _max_pool2_fwd(x):
    y = max_pool2_reshape(x)
    return y, (x, y)


def _max_pool2_bwd(res, g):
    x, y = res
    hit = _windows(x) == y[:, :, None, :, None, :]
    return (jnp.where(hit, g[:, :, None, :, None, :], 0).reshape(x.shape),)


max_pool2_reshape.defvjp(_max_pool2_fwd, _max_pool2_bwd)
