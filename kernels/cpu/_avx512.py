"""Hand-written AVX-512 loops for what LLVM does not vectorise well.

* :func:`lut64` (AVX512-VBMI): a 256-entry byte table lookup, 64 bytes at a
  time.  ``vpermi2b`` picks each byte of its result from a 128-byte table
  held in two zmm registers, indexed by the low 7 bits of the index byte.
  Two of them (table bytes 0-127 and 128-255) and a select on the index's top
  bit look up 64 bytes in four instructions, with the table in registers: the
  lookup runs at memory speed, where a scalar loop does one load per byte.
* :func:`permute64` (AVX512-VBMI): one ``vpermb`` per 64 bytes, the same
  byte permutation within every 64-byte block (channel shuffle of a
  channels-last tensor whose channel count divides 64).
* :func:`minmax64` (AVX512F): ``vminps`` / ``vmaxps`` over float32 data on
  four pairs of accumulators, with a flag for NaN.  ``vminps`` is not
  ``llvm.minimum`` (it returns its second operand for NaN and for two zeros),
  so the caller uses the result only when no NaN was seen and neither result
  is zero; otherwise it recomputes with the exact loop.  LLVM's own
  vectorisation of ``llvm.minimum`` costs several instructions per vector
  and runs at about half of memory speed.

Each is only compiled on CPUs with its feature (LLVM cannot select the
instructions elsewhere): :func:`vbmi_available` and :func:`avx512_available`
tell the callers which path to take, and ``QOPS_DISABLE_AVX512=1`` turns
both off (the tests run the portable paths that way).
"""

import os

from llvmlite import ir
from numba import types
from numba.extending import intrinsic

__all__ = ["vbmi_available", "avx512_available", "lut64", "permute64", "minmax64"]

_I1 = ir.IntType(1)
_I8 = ir.IntType(8)
_I32 = ir.IntType(32)
_I64 = ir.IntType(64)
_F32 = ir.FloatType()
_V64 = ir.VectorType(_I8, 64)
_VF = ir.VectorType(_F32, 16)
_VB = ir.VectorType(_I1, 16)
_VPERMI2B = "llvm.x86.avx512.vpermi2var.qi.512"
_VPERMB = "llvm.x86.avx512.permvar.qi.512"
_VMINPS = "llvm.x86.avx512.min.ps.512"
_VMAXPS = "llvm.x86.avx512.max.ps.512"


def _host_features():
    try:
        import llvmlite.binding as llvm

        return llvm.get_host_cpu_features()
    except Exception:  # pragma: no cover - llvmlite without the query
        return {}


#: The host CPU's features as LLVM names them (read once; also for the VNNI GEMM).
HOST_FEATURES = _host_features()
_HOST_AVX512 = bool(HOST_FEATURES.get("avx512f", False))
_HOST_VBMI = (_HOST_AVX512 and bool(HOST_FEATURES.get("avx512vbmi", False))
              and bool(HOST_FEATURES.get("avx512bw", False)))


def _enabled() -> bool:
    return os.environ.get("QOPS_DISABLE_AVX512", "") in ("", "0")


def vbmi_available() -> bool:
    """True when :func:`lut64` will run (host support, ``QOPS_DISABLE_AVX512`` unset)."""
    return _HOST_VBMI and _enabled()


def avx512_available() -> bool:
    """True when :func:`minmax64` will run (host support, ``QOPS_DISABLE_AVX512`` unset)."""
    return _HOST_AVX512 and _enabled()


def _intrinsic_fn(mod, name, fnty):
    fn = mod.globals.get(name)
    return fn if fn is not None else ir.Function(mod, fnty, name)


def _u8_c(*arrays):
    """Whether every Numba type given is a contiguous uint8 array."""
    return all(isinstance(a, types.Array) and a.dtype == types.uint8 and a.layout == "C" for a in arrays)


def _map64(builder, px, po, nvec, name, fn):
    """Emit ``for v in range(nvec): po[64v : 64v+64] = fn(px[64v : 64v+64])``
    over 64-byte vectors (unaligned loads and stores); ``fn(builder, xv)``
    emits the map of one vector."""
    vptr = _V64.as_pointer()
    pre = builder.block
    func = builder.function
    head = func.append_basic_block(f"{name}.head")
    body = func.append_basic_block(f"{name}.body")
    done = func.append_basic_block(f"{name}.done")
    builder.branch(head)

    builder.position_at_end(head)
    i = builder.phi(_I64)
    i.add_incoming(ir.Constant(_I64, 0), pre)
    builder.cbranch(builder.icmp_signed("<", i, nvec), body, done)

    builder.position_at_end(body)
    off = builder.mul(i, ir.Constant(_I64, 64))
    xv = builder.load(builder.bitcast(builder.gep(px, [off]), vptr), align=1)
    builder.store(fn(builder, xv), builder.bitcast(builder.gep(po, [off]), vptr), align=1)
    i.add_incoming(builder.add(i, ir.Constant(_I64, 1)), builder.block)
    builder.branch(head)

    builder.position_at_end(done)


def _lut64_codegen(context, builder, sig, args):
    t_arr, x_arr, x_off, o_arr, o_off, nvec = args
    pt = context.make_array(sig.args[0])(context, builder, t_arr).data
    px = builder.gep(context.make_array(sig.args[1])(context, builder, x_arr).data, [x_off])
    po = builder.gep(context.make_array(sig.args[3])(context, builder, o_arr).data, [o_off])
    perm = _intrinsic_fn(builder.module, _VPERMI2B, ir.FunctionType(_V64, [_V64, _V64, _V64]))
    vptr = _V64.as_pointer()
    tab = [builder.load(builder.bitcast(builder.gep(pt, [ir.Constant(_I64, 64 * q)]), vptr), align=1)
           for q in range(4)]
    zero = ir.Constant(_V64, None)

    def lookup(b, xv):
        lo = b.call(perm, [tab[0], xv, tab[1]])
        hi = b.call(perm, [tab[2], xv, tab[3]])
        return b.select(b.icmp_signed("<", xv, zero), hi, lo)

    _map64(builder, px, po, nvec, "lut64", lookup)
    return context.get_dummy_value()


@intrinsic
def lut64(typingctx, t, x, x_off, out, out_off, nvec):
    """``out[out_off + k] = t[x[x_off + k]]`` for ``k < 64 * nvec``.

    ``t``: 256 contiguous uint8 (the table); ``x``, ``out``: contiguous uint8
    arrays; offsets in bytes.  No bounds checks: the caller keeps every index
    inside its array.
    """
    if not _u8_c(t, x, out):
        return None
    sig = types.void(t, x, types.intp, out, types.intp, types.intp)
    return sig, _lut64_codegen


def _permute64_codegen(context, builder, sig, args):
    x_arr, x_off, o_arr, o_off, nvec, idx_arr = args
    px = builder.gep(context.make_array(sig.args[0])(context, builder, x_arr).data, [x_off])
    po = builder.gep(context.make_array(sig.args[2])(context, builder, o_arr).data, [o_off])
    pi = context.make_array(sig.args[5])(context, builder, idx_arr).data
    perm = _intrinsic_fn(builder.module, _VPERMB, ir.FunctionType(_V64, [_V64, _V64]))
    vptr = _V64.as_pointer()
    idx = builder.load(builder.bitcast(pi, vptr), align=1)
    _map64(builder, px, po, nvec, "permute64", lambda b, xv: b.call(perm, [xv, idx]))
    return context.get_dummy_value()


@intrinsic
def permute64(typingctx, x, x_off, out, out_off, nvec, idx):
    """``out[out_off + 64*v + j] = x[x_off + 64*v + idx[j]]`` for ``v < nvec``,
    ``j < 64`` (``idx``: 64 uint8 values below 64).  Contiguous uint8 arrays,
    offsets in bytes, no bounds checks."""
    if not _u8_c(x, out, idx):
        return None
    return types.void(x, types.intp, out, types.intp, types.intp, idx), _permute64_codegen


#: float32 lanes per iteration of :func:`minmax64` (four zmm registers)
MINMAX_BLOCK = 64


def _minmax64_codegen(context, builder, sig, args):
    x_arr, x_off, nblk, out_arr = args
    px = builder.gep(context.make_array(sig.args[0])(context, builder, x_arr).data, [x_off])
    po = context.make_array(sig.args[3])(context, builder, out_arr).data
    fnty = ir.FunctionType(_VF, [_VF, _VF, _I32])
    vmin = _intrinsic_fn(builder.module, _VMINPS, fnty)
    vmax = _intrinsic_fn(builder.module, _VMAXPS, fnty)
    cur = ir.Constant(_I32, 4)  # _MM_FROUND_CUR_DIRECTION
    vptr = _VF.as_pointer()
    inf = ir.Constant(_VF, [float("inf")] * 16)
    ninf = ir.Constant(_VF, [float("-inf")] * 16)
    nonan = ir.Constant(_VB, [0] * 16)

    pre = builder.block
    fn = builder.function
    head = fn.append_basic_block("minmax64.head")
    body = fn.append_basic_block("minmax64.body")
    done = fn.append_basic_block("minmax64.done")
    builder.branch(head)

    builder.position_at_end(head)
    i = builder.phi(_I64)
    i.add_incoming(ir.Constant(_I64, 0), pre)
    mins, maxs, nans = [], [], []
    for _ in range(4):
        for acc, init in ((mins, inf), (maxs, ninf)):
            ph = builder.phi(_VF)
            ph.add_incoming(init, pre)
            acc.append(ph)
        ph = builder.phi(_VB)
        ph.add_incoming(nonan, pre)
        nans.append(ph)
    builder.cbranch(builder.icmp_signed("<", i, nblk), body, done)

    builder.position_at_end(body)
    base = builder.mul(i, ir.Constant(_I64, MINMAX_BLOCK))
    new = []
    for q in range(4):
        p = builder.gep(px, [builder.add(base, ir.Constant(_I64, 16 * q))])
        v = builder.load(builder.bitcast(p, vptr), align=4)
        new.append((builder.call(vmin, [mins[q], v, cur]),
                    builder.call(vmax, [maxs[q], v, cur]),
                    builder.or_(nans[q], builder.fcmp_unordered("uno", v, v))))
    end = builder.block
    i.add_incoming(builder.add(i, ir.Constant(_I64, 1)), end)
    for q, (a, b, c) in enumerate(new):
        mins[q].add_incoming(a, end)
        maxs[q].add_incoming(b, end)
        nans[q].add_incoming(c, end)
    builder.branch(head)

    builder.position_at_end(done)
    mn = builder.call(vmin, [builder.call(vmin, [mins[0], mins[1], cur]),
                             builder.call(vmin, [mins[2], mins[3], cur]), cur])
    mx = builder.call(vmax, [builder.call(vmax, [maxs[0], maxs[1], cur]),
                             builder.call(vmax, [maxs[2], maxs[3], cur]), cur])
    nan = builder.or_(builder.or_(nans[0], nans[1]), builder.or_(nans[2], nans[3]))
    builder.store(mn, builder.bitcast(po, vptr), align=4)
    builder.store(mx, builder.bitcast(builder.gep(po, [ir.Constant(_I64, 16)]), vptr), align=4)
    flag = builder.uitofp(builder.bitcast(nan, ir.IntType(16)), _F32)
    builder.store(flag, builder.gep(po, [ir.Constant(_I64, 32)]))
    return context.get_dummy_value()


@intrinsic
def minmax64(typingctx, x, x_off, nblk, out):
    """Lane-wise ``vminps`` / ``vmaxps`` of ``x[x_off : x_off + 64 * nblk]``.

    ``out`` (33 float32) receives 16 minima, 16 maxima and, last, a value
    that is non-zero when any element was NaN.  The lanes are exact minima and
    maxima unless a NaN or a zero of either sign took part (see the module
    docstring); ``x`` is a contiguous float32 array, offsets count elements.
    """
    for a in (x, out):
        if not (isinstance(a, types.Array) and a.dtype == types.float32 and a.layout == "C"):
            return None
    return types.void(x, types.intp, types.intp, out), _minmax64_codegen
