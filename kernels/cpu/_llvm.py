"""LLVM intrinsics that Numba does not expose.

``fma32``/``fma64`` compute ``a*b + c`` with ONE rounding (``llvm.fma``).
LLVM guarantees the fused result on every target: with hardware FMA it is an
instruction, without it a correctly rounded library call.  Loops using it
vectorise to ``vfmadd``.  ``add_i32`` is a wrapping int32 addition that stays
int32 (Numba widens ``int32 + int32`` to int64).  ``f32_from_bits`` and
``f64_from_bits`` reinterpret an integer's bits as a float without the
temporary array of ``np.array([i]).view(...)``.  ``load_u64`` reads 8 bytes of
a uint8 array at any offset as one integer (one unaligned load).
``copy_bytes`` and ``fill_bytes`` are ``llvm.memcpy`` and ``llvm.memset`` on
uint8 arrays: a short copy of a run-time length without the alias test and
scalar tail of a vectorised loop.
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


def _add_i32_codegen(context, builder, sig, args):
    return builder.add(args[0], args[1])


@intrinsic
def add_i32(typingctx, a, b):
    """int32 ``a + b`` with two's-complement wraparound, as one ``add i32``.

    Numba widens ``int32 + int32`` to int64; truncating afterwards gives the
    same bits but can keep the int64 lanes in a vectorised loop (half the
    width)."""
    if a != types.int32 or b != types.int32:
        return None
    return types.int32(types.int32, types.int32), _add_i32_codegen


def _bitcast_codegen(context, builder, sig, args):
    return builder.bitcast(args[0], context.get_value_type(sig.return_type))


@intrinsic
def f32_from_bits(typingctx, i):
    """The float32 whose bits are the int32 ``i`` (one ``bitcast``)."""
    if i != types.int32:
        return None
    return types.float32(types.int32), _bitcast_codegen


@intrinsic
def f64_from_bits(typingctx, i):
    """The float64 whose bits are the int64 ``i`` (one ``bitcast``)."""
    if i != types.int64:
        return None
    return types.float64(types.int64), _bitcast_codegen


def _load_u64_codegen(context, builder, sig, args):
    arr, off = args
    data = context.make_array(sig.args[0])(context, builder, arr).data
    p = builder.bitcast(builder.gep(data, [off]), ir.IntType(64).as_pointer())
    return builder.load(p, align=1)


@intrinsic
def load_u64(typingctx, a, off):
    """Bytes ``a[off : off + 8]`` of a contiguous uint8 array as one
    little-endian uint64: a single unaligned load (no bounds check)."""
    if not (isinstance(a, types.Array) and a.dtype == types.uint8 and a.layout == "C"):
        return None
    return types.uint64(a, types.uint64), _load_u64_codegen


def _u8_array(a):
    return isinstance(a, types.Array) and a.dtype == types.uint8 and a.layout == "C"


def _copy_bytes_codegen(context, builder, sig, args):
    dst, d_off, src, s_off, n = args
    pd = builder.gep(context.make_array(sig.args[0])(context, builder, dst).data, [d_off])
    ps = builder.gep(context.make_array(sig.args[2])(context, builder, src).data, [s_off])
    i8p = ir.IntType(8).as_pointer()
    fn = builder.module.declare_intrinsic("llvm.memcpy", [i8p, i8p, ir.IntType(64)])
    builder.call(fn, [pd, ps, n, ir.Constant(ir.IntType(1), 0)])
    return context.get_dummy_value()


@intrinsic
def copy_bytes(typingctx, dst, d_off, src, s_off, n):
    """``dst[d_off : d_off + n] = src[s_off : s_off + n]`` for contiguous
    uint8 arrays whose ranges do not overlap (no bounds check)."""
    if not (_u8_array(dst) and _u8_array(src)):
        return None
    return types.void(dst, types.uint64, src, types.uint64, types.uint64), _copy_bytes_codegen


def _fill_bytes_codegen(context, builder, sig, args):
    dst, d_off, v, n = args
    pd = builder.gep(context.make_array(sig.args[0])(context, builder, dst).data, [d_off])
    fn = builder.module.declare_intrinsic("llvm.memset", [ir.IntType(8).as_pointer(), ir.IntType(64)])
    builder.call(fn, [pd, v, n, ir.Constant(ir.IntType(1), 0)])
    return context.get_dummy_value()


@intrinsic
def fill_bytes(typingctx, dst, d_off, v, n):
    """``dst[d_off : d_off + n] = v`` for a contiguous uint8 array and a
    uint8 ``v`` (no bounds check)."""
    if not (_u8_array(dst) and v == types.uint8):
        return None
    return types.void(dst, types.uint64, types.uint8, types.uint64), _fill_bytes_codegen
