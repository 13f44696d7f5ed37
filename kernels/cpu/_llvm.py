"""LLVM intrinsics that Numba does not expose.

``fma32``/``fma64`` compute ``a*b + c`` with ONE rounding (``llvm.fma``).
LLVM guarantees the fused result on every target: with hardware FMA it is an
instruction, without it a correctly rounded library call.  Loops using it
vectorise to ``vfmadd``.
"""

from llvmlite import ir
from numba import types
from numba.extending import intrinsic


def _fma_codegen(context, builder, sig, args):
    fnty = context.get_value_type(sig.return_type)
    fn = builder.module.declare_intrinsic(
        "llvm.fma", [fnty], ir.FunctionType(fnty, [fnty, fnty, fnty])
    )
    return builder.call(fn, args)


@intrinsic
def fma32(typingctx, a, b, c):
    """float32 fused multiply-add: ``fl(a*b + c)``."""
    sig = types.float32(types.float32, types.float32, types.float32)
    return sig, _fma_codegen


@intrinsic
def fma64(typingctx, a, b, c):
    """float64 fused multiply-add: ``fl64(a*b + c)``."""
    sig = types.float64(types.float64, types.float64, types.float64)
    return sig, _fma_codegen
