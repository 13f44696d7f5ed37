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
  four pairs of accumulators, folded in registers, with a flag for NaN.  ``vminps`` is not
  ``llvm.minimum`` (it returns its second operand for NaN and for two zeros),
  so the caller uses the result only when no NaN was seen and neither result
  is zero; otherwise it recomputes with the exact loop.  LLVM's own
  vectorisation of ``llvm.minimum`` costs several instructions per vector
  and runs at about half of memory speed.
* :func:`rowq64` (AVX512F + BW): fbgemm's rowwise prepack of whole 64-float
  blocks, ``(x - min) * inv`` through ``vcvtps2dq`` and the saturating packs,
  8-bit bytes or 4-bit nibble pairs.
* :func:`bagacc64`: fbgemm's embedding-bag accumulation, 64 columns of every
  row of a bag with the sums in registers across the rows.  It is plain LLVM
  vector code (``fma.v16f32``, no x86 intrinsic), so it runs on every host
  and is not switched by ``QOPS_DISABLE_AVX512``.
* :func:`bag8rows64`: the 8-bit bag sum read straight from the indices, as
  fbgemm's JIT kernel runs it (scale and bias loads, prefetch, sums in
  registers), plain LLVM vector code.
* :func:`sgemm4x64`: one K block of MKL's blocked sgemm order for 4 rows and
  64 columns, the 16 vector sums in registers (plain LLVM vector code too).
* :func:`maxtaps64` / :func:`sumtaps64` (AVX512F + BW): channels-last
  pooling windows 64 channels at a time, the running maximum (bytes) or sum
  (int32 lanes) held in registers across the window's taps.  Numba's loop
  keeps it in the output row in memory, a load and a store per tap.
* :func:`colsums64` / :func:`affine64` (AVX512F + BW): channels-last group
  norm, 64 channels at a time: float32 running sums of ``x`` and ``x*x``
  over pixels, and the per-channel affine map and quantization, with the
  sums or the channel factors held in registers across the pixels.
* :func:`qprelu64` (AVX512F + BW): torch's integer PReLU, 64 values per
  iteration, the same int32-to-8-bit saturation as :func:`qadd64`.
* :func:`qadd64` / :func:`qmul64` (AVX512F + BW): torch's vector lambdas of
  the 8-bit quantized add and mul, 64 elements per iteration, written as
  torch's AVX512 code is: ``vcvtps2dq`` itself (its NaN and overflow result is
  part of the arithmetic) and the int32 -> int8 saturation as
  ``vpackssdw`` + ``vpackuswb`` / ``vpacksswb`` + ``vpermd``.  Numba's own
  loop over the same formula runs 16 lanes per iteration, narrows with
  ``vpmovdb`` after two clamps, and takes 1.5-1.7 times as long.

Each is only compiled on CPUs with its feature (LLVM cannot select the
instructions elsewhere): :func:`vbmi_available`, :func:`avx512_available`
and :func:`avx512bw_available` tell the callers which path to take, and
``QOPS_DISABLE_AVX512=1`` turns all of them off (the tests run the portable
paths that way).
"""

import os

from llvmlite import ir
from numba import types
from numba.extending import intrinsic

__all__ = ["vbmi_available", "avx512_available", "avx512bw_available", "lut64", "permute64",
           "minmax64", "rowq64", "bagacc64", "bag8rows64", "sgemm4x64", "qadd64", "qmul64", "qprelu64", "maxtaps64", "sumtaps64", "colsums64",
           "affine64"]

_I1 = ir.IntType(1)
_I8 = ir.IntType(8)
_I16 = ir.IntType(16)
_I32 = ir.IntType(32)
_I64 = ir.IntType(64)
_F32 = ir.FloatType()
_V64 = ir.VectorType(_I8, 64)
_V16 = ir.VectorType(_I8, 16)
_VI = ir.VectorType(_I32, 16)
_VW = ir.VectorType(_I16, 32)
_VF = ir.VectorType(_F32, 16)
_VB = ir.VectorType(_I1, 16)
_VPERMI2B = "llvm.x86.avx512.vpermi2var.qi.512"
_VPERMB = "llvm.x86.avx512.permvar.qi.512"
_VMINPS = "llvm.x86.avx512.min.ps.512"
_VMAXPS = "llvm.x86.avx512.max.ps.512"
_VCVTPS2DQ = "llvm.x86.avx512.mask.cvtps2dq.512"
_VPACKSSDW = "llvm.x86.avx512.packssdw.512"
_VPACKUSWB = "llvm.x86.avx512.packuswb.512"
_VPACKSSWB = "llvm.x86.avx512.packsswb.512"
_VPERMD = "llvm.x86.avx512.permvar.si.512"


def _host_features():
    try:
        import llvmlite.binding as llvm

        return llvm.get_host_cpu_features()
    except Exception:  # pragma: no cover - llvmlite without the query
        return {}


#: The host CPU's features as LLVM names them (read once; also for the VNNI GEMM).
HOST_FEATURES = _host_features()
_HOST_AVX512 = bool(HOST_FEATURES.get("avx512f", False))
_HOST_BW = _HOST_AVX512 and bool(HOST_FEATURES.get("avx512bw", False))
_HOST_VBMI = _HOST_BW and bool(HOST_FEATURES.get("avx512vbmi", False))


_SWITCH = "QOPS_DISABLE_AVX512"
try:
    _SWITCH_KEY = os.environ.encodekey(_SWITCH)  # as os.environ stores it (bytes on POSIX)
except AttributeError:  # an os.environ without CPython's mapping
    _SWITCH_KEY = None


def _enabled() -> bool:
    """``QOPS_DISABLE_AVX512`` unset, empty or ``0``, read at every call (it
    can change between calls).  Read from ``os.environ``'s own mapping:
    ``os.environ.get`` of an unset variable raises and catches a KeyError
    inside, 0.7 us a call, which every table activation and requantize of a
    few thousand values paid once or twice."""
    data = getattr(os.environ, "_data", None)
    if data is None or _SWITCH_KEY is None:
        return os.environ.get(_SWITCH, "") in ("", "0")
    v = data.get(_SWITCH_KEY)
    return v is None or v in (b"", b"0", "", "0")


def vbmi_available() -> bool:
    """True when :func:`lut64` will run (host support, ``QOPS_DISABLE_AVX512`` unset)."""
    return _HOST_VBMI and _enabled()


def avx512_available() -> bool:
    """True when :func:`minmax64` will run (host support, ``QOPS_DISABLE_AVX512`` unset)."""
    return _HOST_AVX512 and _enabled()


def avx512bw_available() -> bool:
    """True when :func:`rowq64`, :func:`qadd64`, :func:`qmul64`, :func:`qprelu64`,
    :func:`maxtaps64`, :func:`sumtaps64`, :func:`colsums64` and
    :func:`affine64` will run (AVX512F and BW on the host,
    ``QOPS_DISABLE_AVX512`` unset)."""
    return _HOST_BW and _enabled()


def _intrinsic_fn(mod, name, fnty):
    fn = mod.globals.get(name)
    return fn if fn is not None else ir.Function(mod, fnty, name)


def _u8_c(*arrays):
    """Whether every Numba type given is a contiguous uint8 array."""
    return all(isinstance(a, types.Array) and a.dtype == types.uint8 and a.layout == "C" for a in arrays)


def _for(builder, n, name, emit):
    """Emit ``for i in range(n): emit(builder, i)`` (``n``: an i64 value)."""
    def step(b, i, acc):
        emit(b, i)
        return acc

    _fold(builder, n, name, [], step)


def _fold(builder, n, name, init, emit):
    """Emit ``acc = init; for i in range(n): acc = emit(builder, i, acc)`` with
    the accumulators (a list of values) in registers; returns their final values."""
    pre = builder.block
    func = builder.function
    head = func.append_basic_block(f"{name}.head")
    body = func.append_basic_block(f"{name}.body")
    done = func.append_basic_block(f"{name}.done")
    builder.branch(head)

    builder.position_at_end(head)
    i = builder.phi(_I64)
    i.add_incoming(ir.Constant(_I64, 0), pre)
    acc = []
    for v in init:
        ph = builder.phi(v.type)
        ph.add_incoming(v, pre)
        acc.append(ph)
    builder.cbranch(builder.icmp_signed("<", i, n), body, done)

    builder.position_at_end(body)
    new = emit(builder, i, acc)
    end = builder.block
    i.add_incoming(builder.add(i, ir.Constant(_I64, 1)), end)
    for ph, v in zip(acc, new):
        ph.add_incoming(v, end)
    builder.branch(head)

    builder.position_at_end(done)
    return acc


def _for_bits(builder, bits, n, name, four, eight):
    """Emit ``for i in range(n): four(builder, i)`` when the run-time ``bits``
    is 4, else the same loop over ``eight`` (the 4-bit and 8-bit row kernels)."""
    with builder.if_else(builder.icmp_unsigned("==", bits, ir.Constant(bits.type, 4))) as (then, otherwise):
        with then:
            _for(builder, n, f"{name}.4", four)
        with otherwise:
            _for(builder, n, f"{name}.8", eight)


def _map64(builder, px, po, nvec, name, fn):
    """Emit ``for v in range(nvec): po[64v : 64v+64] = fn(px[64v : 64v+64])``
    over 64-byte vectors (unaligned loads and stores); ``fn(builder, xv)``
    emits the map of one vector."""
    vptr = _V64.as_pointer()

    def one(b, i):
        off = b.mul(i, ir.Constant(_I64, 64))
        xv = b.load(b.bitcast(b.gep(px, [off]), vptr), align=1)
        b.store(fn(b, xv), b.bitcast(b.gep(po, [off]), vptr), align=1)

    _for(builder, nvec, name, one)


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

    def block(b, i, acc):
        base = b.mul(i, ir.Constant(_I64, MINMAX_BLOCK))
        new = []
        for q in range(4):
            p = b.gep(px, [b.add(base, ir.Constant(_I64, 16 * q))])
            v = b.load(b.bitcast(p, vptr), align=4)
            mn_q, mx_q, nan_q = acc[3 * q:3 * q + 3]
            new += [b.call(vmin, [mn_q, v, cur]), b.call(vmax, [mx_q, v, cur]),
                    b.or_(nan_q, b.fcmp_unordered("uno", v, v))]
        return new

    acc = _fold(builder, nblk, "minmax64", [inf, ninf, nonan] * 4, block)
    mins, maxs, nans = acc[0::3], acc[1::3], acc[2::3]

    mn = builder.call(vmin, [builder.call(vmin, [mins[0], mins[1], cur]),
                             builder.call(vmin, [mins[2], mins[3], cur]), cur])
    mx = builder.call(vmax, [builder.call(vmax, [maxs[0], maxs[1], cur]),
                             builder.call(vmax, [maxs[2], maxs[3], cur]), cur])
    # fold the 16 lanes in registers: the upper half onto the lower, four times
    undef = ir.Constant(_VF, ir.Undefined)
    for half in (8, 4, 2, 1):
        idx = ir.Constant(ir.VectorType(_I32, 16), [half + k % half for k in range(16)])
        mn = builder.call(vmin, [mn, builder.shuffle_vector(mn, undef, idx), cur])
        mx = builder.call(vmax, [mx, builder.shuffle_vector(mx, undef, idx), cur])
    zero = ir.Constant(_I32, 0)
    nan = builder.or_(builder.or_(nans[0], nans[1]), builder.or_(nans[2], nans[3]))
    builder.store(builder.extract_element(mn, zero), po)
    builder.store(builder.extract_element(mx, zero), builder.gep(po, [ir.Constant(_I64, 1)]))
    flag = builder.uitofp(builder.bitcast(nan, ir.IntType(16)), _F32)
    builder.store(flag, builder.gep(po, [ir.Constant(_I64, 2)]))
    return context.get_dummy_value()


@intrinsic
def minmax64(typingctx, x, x_off, nblk, out):
    """``vminps`` / ``vmaxps`` of ``x[x_off : x_off + 64 * nblk]``.

    ``out`` (3 float32) receives the minimum, the maximum and a value that is
    non-zero when any element was NaN.  Sixteen lanes of four accumulator
    pairs each take every 64th element; the lanes are then folded in
    registers (a tree).  The results are exact minima and maxima unless a
    NaN or a zero of either sign took part (see the module docstring), so the
    order of the folds does not matter; ``x`` is a contiguous float32 array,
    offsets count elements.
    """
    for a in (x, out):
        if not (isinstance(a, types.Array) and a.dtype == types.float32 and a.layout == "C"):
            return None
    return types.void(x, types.intp, types.intp, out), _minmax64_codegen


def _rowq64_codegen(context, builder, sig, args):
    x_arr, x_off, o_arr, o_off, nblk, m, s, bits = args
    px = builder.gep(context.make_array(sig.args[0])(context, builder, x_arr).data, [x_off])
    po = builder.gep(context.make_array(sig.args[2])(context, builder, o_arr).data, [o_off])
    mv, sv = _splat(builder, m, _VF), _splat(builder, s, _VF)
    vptr = _VF.as_pointer()
    v32 = ir.VectorType(_I8, 32)

    def quantize(b, i):
        base = b.mul(i, ir.Constant(_I64, MINMAX_BLOCK))
        v4 = []
        for q in range(4):
            v = b.load(b.bitcast(b.gep(px, [b.add(base, ir.Constant(_I64, 16 * q))]), vptr), align=4)
            v4.append(_cvtps2dq(b, b.fmul(b.fsub(v, mv), sv)))
        return base, _pack64(b, v4, False)

    def one8(b, i):
        base, x = quantize(b, i)
        b.store(x, b.bitcast(b.gep(po, [base]), _V64.as_pointer()), align=1)

    def one4(b, i):
        base, x = quantize(b, i)
        top = ir.Constant(_V64, [15] * 64)
        x = b.select(b.icmp_unsigned("<", x, top), x, top)
        w = b.bitcast(x, _VW)  # value 2k in the low byte of lane k, 2k+1 in the high
        w = b.or_(w, b.lshr(w, ir.Constant(_VW, [4] * 32)))
        dst = b.gep(po, [b.lshr(base, ir.Constant(_I64, 1))])
        b.store(b.trunc(w, v32), b.bitcast(dst, v32.as_pointer()), align=1)

    _for_bits(builder, bits, nblk, "rowq64", one4, one8)
    return context.get_dummy_value()


@intrinsic
def rowq64(typingctx, x, x_off, out, o_off, nblk, m, s, bits):
    """fbgemm's rowwise quantization of ``64 * nblk`` float32 values from
    ``x[x_off]`` into bytes from ``out[o_off]``, as its AVX2 prepack treats
    whole vectors: ``saturate_u8(cvtps2dq((x - m) * s))`` (a subtraction and
    a product, no FMA; NaN gives 0).  ``bits == 4`` then clamps to 15 and
    packs two values a byte, the first in the low half (``32 * nblk``
    bytes); other ``bits`` store a byte each.  ``x``: contiguous float32;
    ``out``: contiguous uint8; no bounds checks.
    """
    if not (_f32_c(x) and _u8_c(out)):
        return None
    f = types.float32
    return types.void(x, types.intp, out, types.intp, types.intp, f, f, types.intp), _rowq64_codegen


def _bagacc64_codegen(context, builder, sig, args):
    w_arr, W, r_arr, s_arr, b_arr, n, a_arr, lo_arr, hi_arr, nblk, bits = args
    pw, pr, ps, pb, pa, plo, phi = (context.make_array(sig.args[k])(context, builder, args[k]).data
                                    for k in (0, 2, 3, 4, 6, 7, 8))
    fma = _intrinsic_fn(builder.module, "llvm.fma.v16f32", ir.FunctionType(_VF, [_VF, _VF, _VF]))
    vptr = _VF.as_pointer()
    b16 = _V16.as_pointer()

    def rows(b, accs, col, step):
        """Fold ``step(b, k, row_byte_offset, s, bias, accs)`` over the rows."""
        def one(bb, k, acc):
            off = bb.add(bb.mul(bb.load(bb.gep(pr, [k])), W), col)
            s = _splat(bb, bb.load(bb.gep(ps, [k])), _VF)
            bias = _splat(bb, bb.load(bb.gep(pb, [k])), _VF)
            return step(bb, off, s, bias, acc)
        return _fold(b, n, "bagacc64.rows", accs, one)

    def values(bb, off):
        return bb.load(bb.bitcast(bb.gep(pw, [off]), b16), align=1)

    def block8(b, blk):
        col = b.mul(blk, ir.Constant(_I64, 64))
        dst = [b.bitcast(b.gep(pa, [b.add(col, ir.Constant(_I64, 16 * q))]), vptr) for q in range(4)]

        def step(bb, off, s, bias, acc):
            out = []
            for q in range(4):
                v = bb.uitofp(values(bb, bb.add(off, ir.Constant(_I64, 16 * q))), _VF)
                out.append(bb.call(fma, [s, v, bb.fadd(acc[q], bias)]))
            return out

        fin = rows(b, [b.load(d, align=4) for d in dst], col, step)
        for d, v in zip(dst, fin):
            b.store(v, d, align=4)

    def block4(b, blk):
        col = b.mul(blk, ir.Constant(_I64, 32))  # bytes: two values each
        dst = [b.bitcast(b.gep(p, [b.add(col, ir.Constant(_I64, 16 * q))]), vptr)
               for p in (plo, phi) for q in range(2)]
        m4 = ir.Constant(_V16, [15] * 16)
        f4 = ir.Constant(_V16, [4] * 16)

        def step(bb, off, s, bias, acc):
            out = []
            for q in range(2):
                v = values(bb, bb.add(off, ir.Constant(_I64, 16 * q)))
                out.append(bb.call(fma, [s, bb.uitofp(bb.and_(v, m4), _VF), bb.fadd(acc[q], bias)]))
            for q in range(2):
                v = values(bb, bb.add(off, ir.Constant(_I64, 16 * q)))
                out.append(bb.call(fma, [s, bb.uitofp(bb.lshr(v, f4), _VF), bb.fadd(acc[2 + q], bias)]))
            return out

        fin = rows(b, [b.load(d, align=4) for d in dst], col, step)
        for d, v in zip(dst, fin):
            b.store(v, d, align=4)

    _for_bits(builder, bits, nblk, "bagacc64", block4, block8)
    return context.get_dummy_value()


@intrinsic
def bagacc64(typingctx, w, W, rows, sc, bi, n, acc, lo, hi, nblk, bits):
    """fbgemm's bag accumulation of ``n`` packed rows over ``nblk`` blocks
    of 64 columns: for ``k < n`` in order, ``a = fma(sc[k], q, a + bi[k])``
    on every column, with the accumulators in registers across the rows.

    ``w``: the packed rows (contiguous uint8, row ``r`` at byte ``r * W``);
    ``rows`` (int64), ``sc``, ``bi`` (float32): the rows, scales and biases.
    8-bit (``bits == 8``) accumulates into ``acc[:64 * nblk]``; 4-bit the
    low nibbles into ``lo[:32 * nblk]`` and the high ones into ``hi``.
    Contiguous arrays, no bounds checks.
    """
    if not (_u8_c(w) and _f32_c(sc, bi, acc, lo, hi) and _offsets(rows)):
        return None
    i = types.intp
    return types.void(w, i, rows, sc, bi, i, acc, lo, hi, i, i), _bagacc64_codegen


def _sgemm4x64_codegen(context, builder, sig, args):
    a_arr, a_off, lda, nr, b_arr, b_off, ldb, o_arr, o_off, ldo, p0, p1, first = args
    pa, pb, po = (context.make_array(sig.args[k])(context, builder, args[k]).data for k in (0, 4, 7))
    fma = _intrinsic_fn(builder.module, "llvm.fma.v16f32", ir.FunctionType(_VF, [_VF, _VF, _VF]))
    vptr = _VF.as_pointer()
    zero = ir.Constant(_VF, [0.0] * 16)

    def rows(b, n_rows):
        def step(bb, p, acc):
            brow = bb.add(b_off, bb.mul(bb.add(p, p0), ldb))
            bv = [bb.load(bb.bitcast(bb.gep(pb, [bb.add(brow, ir.Constant(_I64, 16 * q))]), vptr), align=4)
                  for q in range(4)]
            out = []
            for rr in range(n_rows):
                aoff = bb.add(bb.add(a_off, bb.mul(ir.Constant(_I64, rr), lda)), bb.add(p, p0))
                av = _splat(bb, bb.load(bb.gep(pa, [aoff])), _VF)
                out += [bb.call(fma, [av, bv[q], acc[4 * rr + q]]) for q in range(4)]
            return out

        acc = _fold(b, b.sub(p1, p0), f"sgemm4x64.{n_rows}", [zero] * (4 * n_rows), step)
        for rr in range(n_rows):
            orow = b.add(o_off, b.mul(ir.Constant(_I64, rr), ldo))
            for q in range(4):
                dst = b.bitcast(b.gep(po, [b.add(orow, ir.Constant(_I64, 16 * q))]), vptr)
                v = acc[4 * rr + q]
                keep = b.select(first, v, b.fadd(b.load(dst, align=4), v))
                b.store(keep, dst, align=4)

    done = builder.function.append_basic_block("sgemm4x64.done")
    cases = [builder.function.append_basic_block(f"sgemm4x64.rows{k}") for k in (1, 2, 3, 4)]
    sw = builder.switch(nr, done)
    for k, blk in zip((1, 2, 3, 4), cases):
        sw.add_case(ir.Constant(nr.type, k), blk)
        builder.position_at_end(blk)
        rows(builder, k)
        builder.branch(done)
    builder.position_at_end(done)
    return context.get_dummy_value()


@intrinsic
def sgemm4x64(typingctx, a, a_off, lda, nr, b, b_off, ldb, out, o_off, ldo, p0, p1, first):
    """One K block of MKL's blocked sgemm path for ``nr`` (1-4) rows and 64
    columns: ``acc = fma(a[r, p], b[p, j], acc)`` for ``p`` from ``p0`` to
    ``p1`` in order, from 0, then ``out = acc`` (``first``) or
    ``out = out + acc``, the 4 x 64 sums in registers across the block.

    Flat contiguous float32 arrays; element offsets: row ``r`` of ``a`` at
    ``a_off + r * lda`` (``p`` counts from there), row ``p`` of ``b`` at
    ``b_off + p * ldb``, output row ``r`` at ``o_off + r * ldo``.  No bounds
    checks.  Plain LLVM vector code (``fma.v16f32``): every host.
    """
    if not _f32_c(a, b, out):
        return None
    i = types.intp
    return types.void(a, i, i, i, b, i, i, out, i, i, i, i, types.boolean), _sgemm4x64_codegen


def _bag8rows64_codegen(context, builder, sig, args):
    w_arr, W, i_arr, p0, p1, nidx, psw_arr, has_psw, pad, o_arr, o_off, nblk, pf = args
    pw, pi, ppsw, pa = (context.make_array(sig.args[k])(context, builder, args[k]).data
                        for k in (0, 2, 6, 9))
    nrows = builder.extract_value(context.make_array(sig.args[0])(context, builder, w_arr).shape, 0)
    with builder.goto_entry_block():
        found = builder.alloca(_I64, name="bag8rows64.bad")
    builder.store(ir.Constant(_I64, 0), found)
    pa = builder.gep(pa, [o_off])
    zero = ir.Constant(_VF, [0.0] * 16)
    fma = _intrinsic_fn(builder.module, "llvm.fma.v16f32", ir.FunctionType(_VF, [_VF, _VF, _VF]))
    i8p = ir.IntType(8).as_pointer()
    prefetch = builder.module.declare_intrinsic("llvm.prefetch", (),
                                                ir.FunctionType(ir.VoidType(), [i8p, _I32, _I32, _I32]))
    vptr = _VF.as_pointer()
    fptr = _F32.as_pointer()
    b16 = _V16.as_pointer()
    one = ir.Constant(_I64, 1)
    last = builder.sub(nidx, one)

    def block(b, blk, first, weighted, padded):
        """One 64-column block, its row loop specialised: ``first`` (block 0)
        prefetches, ``weighted`` multiplies by the per-sample weights,
        ``padded`` skips padding rows (Python flags: no tests per row)."""
        col = b.mul(blk, ir.Constant(_I64, 64))
        dst = [b.bitcast(b.gep(pa, [b.add(col, ir.Constant(_I64, 16 * q))]), vptr) for q in range(4)]

        def row(bb, k, acc):
            p = bb.add(p0, k)
            if first:
                # both ends of the row ``pf`` indices ahead (clamped into the array)
                ahead = bb.load(bb.gep(pi, [bb.select(bb.icmp_signed("<", bb.add(p, pf), nidx),
                                                     bb.add(p, pf), last)]))
                start = bb.gep(pw, [bb.mul(ahead, W)])
                for off in (ir.Constant(_I64, 0), bb.sub(W, one)):
                    bb.call(prefetch, [bb.gep(start, [off]), ir.Constant(_I32, 0), ir.Constant(_I32, 3),
                                       ir.Constant(_I32, 1)])
            r = bb.load(bb.gep(pi, [p]))
            # fbgemm's test of every index: one outside the table is noted
            # and row 0 read in its place (the sum is then not used)
            outside = bb.icmp_unsigned(">=", r, nrows)
            rowp = bb.gep(pw, [bb.mul(bb.select(outside, ir.Constant(_I64, 0), r), W)])
            s = bb.load(bb.bitcast(bb.gep(rowp, [bb.sub(W, ir.Constant(_I64, 8))]), fptr), align=1)
            bias = bb.load(bb.bitcast(bb.gep(rowp, [bb.sub(W, ir.Constant(_I64, 4))]), fptr), align=1)
            if weighted:
                wt = bb.load(bb.gep(ppsw, [p]))
                s = bb.fmul(wt, s)
                bias = bb.fmul(wt, bias)
            sv, bv = _splat(bb, s, _VF), _splat(bb, bias, _VF)
            skip = bb.icmp_signed("==", r, pad) if padded else None  # read (it exists), not added
            out = []
            for q in range(4):
                x = bb.load(bb.bitcast(bb.gep(rowp, [bb.add(col, ir.Constant(_I64, 16 * q))]), b16), align=1)
                v = bb.call(fma, [sv, bb.uitofp(x, _VF), bb.fadd(acc[q], bv)])
                out.append(bb.select(skip, acc[q], v) if padded else v)
            return out + [bb.or_(acc[4], bb.zext(outside, _I64))]

        fin = _fold(b, b.sub(p1, p0), "bag8rows64.rows", [zero] * 4 + [ir.Constant(_I64, 0)], row)
        for d, v in zip(dst, fin):
            b.store(v, d, align=4)
        if first:  # (the later blocks read the same rows)
            b.store(fin[4], found)

    def blocks(weighted, padded):
        with builder.if_then(builder.icmp_signed(">", nblk, ir.Constant(_I64, 0))):
            block(builder, ir.Constant(_I64, 0), True, weighted, padded)
        _for(builder, builder.sub(nblk, one), "bag8rows64.more",
             lambda b, i: block(b, b.add(i, one), False, weighted, padded))

    has_pad = builder.icmp_signed(">=", pad, ir.Constant(_I64, 0))

    def by_padding(weighted):
        with builder.if_else(has_pad) as (then, otherwise):
            with then:
                blocks(weighted, True)
            with otherwise:
                blocks(weighted, False)

    with builder.if_else(has_psw) as (then, otherwise):
        with then:
            by_padding(True)
        with otherwise:
            by_padding(False)
    return builder.load(found)


@intrinsic
def bag8rows64(typingctx, w, W, indices, p0, p1, nidx, psw, has_psw, pad, out, o_off, nblk, pf):
    """fbgemm's 8-bit bag sum of rows ``indices[p0:p1]`` over ``nblk``
    blocks of 64 columns, as its JIT kernel runs it: per row in order, the
    row's scale and bias read from its last 8 bytes (times ``psw[p]`` with
    ``has_psw``), then ``a = fma(scale, q, a + bias)`` on every column, the
    sums in registers from 0 across the rows, stored to
    ``out[o_off : o_off + 64 * nblk]``; rows equal to ``pad`` (when it is
    not negative) are skipped.  The row ``pf`` indices ahead is prefetched
    (both ends).  The row loop is emitted once per case (weights or not,
    padding or not; the first block, which prefetches, or a later one), so
    that no row tests a flag.

    Returns 1 if an index lies outside ``[0, w.shape[0])`` (its row is not
    read; the sums are then meaningless), else 0: fbgemm's kernel tests
    every index as well.

    ``w``: packed rows (contiguous uint8, row ``r`` at ``r * W``, at least
    one row); ``indices`` int64 (``nidx`` of them; ``p0 <= p1`` within
    them); ``psw`` float32 (one element is enough without ``has_psw``);
    ``out`` contiguous float32.  No other bounds checks.  Plain LLVM vector
    code.
    """
    if not (_u8_c(w) and _f32_c(psw, out) and _offsets(indices)):
        return None
    i = types.intp
    return types.int64(w, i, indices, i, i, i, psw, types.boolean, i, out, i, i, i), _bag8rows64_codegen


# ------------------------------------------------------------------ 8-bit add / mul
#: ``vpermd`` order that undoes the 128-bit-lane interleave of the two packs
_PACK_ORDER = ir.Constant(_VI, [0, 4, 8, 12, 1, 5, 9, 13, 2, 6, 10, 14, 3, 7, 11, 15])


def _splat(builder, x, vty):
    v = builder.insert_element(ir.Constant(vty, ir.Undefined), x, ir.Constant(_I32, 0))
    return builder.shuffle_vector(v, ir.Constant(vty, ir.Undefined),
                                  ir.Constant(ir.VectorType(_I32, vty.count), [0] * vty.count))


def _bytes_f32(builder, p, off, signed):
    """16 bytes at ``p + off`` as float32 lanes (exact: they are 8-bit integers)."""
    x = builder.load(builder.bitcast(builder.gep(p, [off]), _V16.as_pointer()), align=1)
    return builder.sitofp(x, _VF) if signed else builder.uitofp(x, _VF)


def _cvtps2dq(builder, t):
    """``vcvtps2dq``: round to nearest even; NaN and out-of-range give INT32_MIN."""
    fn = _intrinsic_fn(builder.module, _VCVTPS2DQ, ir.FunctionType(_VI, [_VF, _VI, _I16, _I32]))
    return builder.call(fn, [t, ir.Constant(_VI, ir.Undefined), ir.Constant(_I16, -1),
                             ir.Constant(_I32, 4)])  # all lanes, _MM_FROUND_CUR_DIRECTION


def _pack64(builder, v4, signed):
    """Four int32 vectors saturated to 64 int8 / uint8 lanes, in order
    (torch's ``_mm512_packs_epi32``, ``_mm512_packus_epi16`` / ``packs_epi16``
    and ``_mm512_permutexvar_epi32``)."""
    mod = builder.module
    packd = _intrinsic_fn(mod, _VPACKSSDW, ir.FunctionType(_VW, [_VI, _VI]))
    packb = _intrinsic_fn(mod, _VPACKSSWB if signed else _VPACKUSWB, ir.FunctionType(_V64, [_VW, _VW]))
    perm = _intrinsic_fn(mod, _VPERMD, ir.FunctionType(_VI, [_VI, _VI]))
    x = builder.call(packb, [builder.call(packd, [v4[0], v4[1]]), builder.call(packd, [v4[2], v4[3]])])
    return builder.bitcast(builder.call(perm, [builder.bitcast(x, _VI), _PACK_ORDER]), _V64)


def _binary64(context, builder, sig, args, name, lanes, relu_bytes):
    """The loop shared by :func:`qadd64` and :func:`qmul64`: for each 64-element
    vector, ``lanes(b, fa, fb, relu)`` maps 16 float32 lanes of each input to
    int32 lanes, which are packed with saturation; ``relu_bytes(b, bytes,
    signed)``, where given, then applies a byte-level ReLU.  ``relu`` (a run-time
    flag) selects one of two loops before the first iteration."""
    a_arr, a_off, b_arr, b_off, o_arr, o_off, nvec, relu = args[:8]
    signed = sig.args[0].dtype == types.int8
    pa = builder.gep(context.make_array(sig.args[0])(context, builder, a_arr).data, [a_off])
    pb = builder.gep(context.make_array(sig.args[2])(context, builder, b_arr).data, [b_off])
    po = builder.gep(context.make_array(sig.args[4])(context, builder, o_arr).data, [o_off])

    def loop(with_relu):
        def one(b, i):
            base = b.mul(i, ir.Constant(_I64, 64))
            v4 = []
            for q in range(4):
                off = b.add(base, ir.Constant(_I64, 16 * q))
                v4.append(lanes(b, _bytes_f32(b, pa, off, signed), _bytes_f32(b, pb, off, signed),
                                with_relu))
            x = _pack64(b, v4, signed)
            if with_relu and relu_bytes is not None:
                x = relu_bytes(b, x, signed)
            b.store(x, b.bitcast(b.gep(po, [base]), _V64.as_pointer()), align=1)

        _for(builder, nvec, f"{name}.relu" if with_relu else name, one)

    flag = builder.icmp_unsigned("!=", relu, ir.Constant(relu.type, 0))
    with builder.if_else(flag) as (then, otherwise):
        with then:
            loop(True)
        with otherwise:
            loop(False)
    return context.get_dummy_value()


def _qadd64_codegen(context, builder, sig, args):
    fma = _intrinsic_fn(builder.module, "llvm.fma.v16f32", ir.FunctionType(_VF, [_VF, _VF, _VF]))
    sa, pa, sb, pb, inv = (_splat(builder, v, _VF) for v in args[8:13])
    zo = _splat(builder, builder.trunc(args[13], _I32), _VI)
    zero = ir.Constant(_VF, [0.0] * 16)
    top = ir.Constant(_VF, [2147483520.0] * 16)  # largest float32 below 2**31

    def lanes(b, fa, fb, relu):
        c = b.fadd(b.call(fma, [sa, fa, pa]), b.call(fma, [sb, fb, pb]))
        if relu:  # vec::maximum(c, 0): NaN stays NaN
            c = b.select(b.fcmp_ordered("<", c, zero), zero, c)
        t = b.fmul(c, inv)
        t = b.select(b.fcmp_ordered("<", t, top), t, top)  # _mm512_min_ps(t, top)
        return b.add(_cvtps2dq(b, t), zo)

    return _binary64(context, builder, sig, args, "qadd64", lanes, None)


def _qmul64_codegen(context, builder, sig, args):
    za, zb, m = (_splat(builder, v, _VF) for v in args[8:11])
    zo = _splat(builder, builder.trunc(args[11], _I32), _VI)
    zo8 = _splat(builder, builder.trunc(args[11], _I8), _V64)

    def lanes(b, fa, fb, relu):
        # (qa - za) * (qb - zb) is an integer below 2**24 in magnitude: exact
        # in float32, so this is torch's int32 product converted
        t = b.fmul(b.fmul(b.fsub(fa, za), b.fsub(fb, zb)), m)
        return b.add(_cvtps2dq(b, t), zo)

    def relu_bytes(b, x, signed):
        below = b.icmp_signed("<", x, zo8) if signed else b.icmp_unsigned("<", x, zo8)
        return b.select(below, zo8, x)

    return _binary64(context, builder, sig, args, "qmul64", lanes, relu_bytes)


def _q8_c(*arrays):
    """Whether the Numba types are contiguous arrays of one 8-bit integer dtype."""
    if not all(isinstance(a, types.Array) and a.layout == "C" for a in arrays):
        return False
    dtypes = {a.dtype for a in arrays}
    return len(dtypes) == 1 and dtypes <= {types.uint8, types.int8}


@intrinsic
def qadd64(typingctx, a, a_off, b, b_off, out, o_off, nvec, relu, sa, pa, sb, pb, inv, zo):
    """torch's AVX512 vector lambda of the 8-bit quantized add (``qadd_kernel``)
    on ``64 * nvec`` elements from the offsets::

        c = fma(sa, a, pa) + fma(sb, b, pb)        (relu: max(c, 0))
        out = saturate(cvtps2dq(min(c * inv, 2147483520)) + zo)

    ``a``, ``b``, ``out``: contiguous arrays of one 8-bit dtype (``int8`` for
    qint8, ``uint8`` for quint8); offsets count elements; ``sa``, ``pa``,
    ``sb``, ``pb``, ``inv`` float32, ``zo`` int64.  No bounds checks.
    """
    if not _q8_c(a, b, out):
        return None
    f = types.float32
    sig = types.void(a, types.intp, b, types.intp, out, types.intp, types.intp, types.boolean,
                     f, f, f, f, f, types.int64)
    return sig, _qadd64_codegen


@intrinsic
def qmul64(typingctx, a, a_off, b, b_off, out, o_off, nvec, relu, za, zb, m, zo):
    """torch's AVX512 vector lambda of the 8-bit quantized mul (``qmul_kernel``)
    on ``64 * nvec`` elements from the offsets::

        out = saturate(cvtps2dq(float((a - za) * (b - zb)) * m) + zo)
        (relu: max(out, zo) on the stored integers)

    Arrays as :func:`qadd64`; ``za``, ``zb`` (the input zero points) and ``m``
    float32, ``zo`` int64.  No bounds checks.
    """
    if not _q8_c(a, b, out):
        return None
    f = types.float32
    sig = types.void(a, types.intp, b, types.intp, out, types.intp, types.intp, types.boolean,
                     f, f, f, types.int64)
    return sig, _qmul64_codegen


def _qprelu64_codegen(context, builder, sig, args):
    x_arr, x_off, o_arr, o_off, nvec, k_arr, k_off, kstep = args[:8]
    signed = sig.args[0].dtype == types.int8
    px = builder.gep(context.make_array(sig.args[0])(context, builder, x_arr).data, [x_off])
    po = builder.gep(context.make_array(sig.args[2])(context, builder, o_arr).data, [o_off])
    pk = builder.gep(context.make_array(sig.args[5])(context, builder, k_arr).data, [k_off])
    kpos, mult, zx, vlo, vhi = (_splat(builder, v, _VF) for v in args[8:13])
    zo = _splat(builder, builder.trunc(args[13], _I32), _VI)
    zero = ir.Constant(_VF, [0.0] * 16)

    def one(b, i):
        base = b.mul(i, ir.Constant(_I64, 64))
        kbase = b.mul(base, kstep)
        v4 = []
        for q in range(4):
            off = b.add(base, ir.Constant(_I64, 16 * q))
            kv = b.load(b.bitcast(b.gep(pk, [b.add(kbase, ir.Constant(_I64, 16 * q))]), _VF.as_pointer()),
                        align=4)
            d = b.fsub(_bytes_f32(b, px, off, signed), zx)
            k = b.select(b.fcmp_ordered(">", d, zero), kpos, kv)
            v = b.fmul(b.fmul(d, k), mult)
            v = b.select(b.fcmp_ordered(">", v, vlo), v, vlo)
            v = b.select(b.fcmp_ordered("<", v, vhi), v, vhi)
            v4.append(b.add(_cvtps2dq(b, v), zo))
        b.store(_pack64(b, v4, signed), b.bitcast(b.gep(po, [base]), _V64.as_pointer()), align=1)

    _for(builder, nvec, "qprelu64", one)
    return context.get_dummy_value()


@intrinsic
def qprelu64(typingctx, x, x_off, out, o_off, nvec, kn, k_off, kstep, kpos, mult, zx, vlo, vhi, zo):
    """torch's integer PReLU on ``64 * nvec`` values from the offsets::

        d = float(x) - zx;  k = kpos if d > 0 else kn[k_off + kstep * j]
        out = saturate(cvtps2dq(clip(fl(fl(d * k) * mult), vlo, vhi)) + zo)

    for element ``j`` counted from ``x_off`` (``kstep`` 1: a factor per
    element, 0: the 64 factors at ``k_off`` for every vector).  ``x``, ``out``:
    contiguous arrays of one 8-bit dtype; ``kn`` contiguous float32; the
    output range is the dtype's.  No bounds checks.
    """
    if not (_q8_c(x, out) and _f32_c(kn)):
        return None
    f = types.float32
    sig = types.void(x, types.intp, out, types.intp, types.intp, kn, types.intp, types.intp,
                     f, f, f, f, f, types.int64)
    return sig, _qprelu64_codegen


# ------------------------------------------------------------------ pooling windows
def _taps64(context, builder, sig, args, name, init, step, store):
    """The loop shared by :func:`maxtaps64` and :func:`sumtaps64`: for each
    64-channel block, fold ``step(b, acc, bytes)`` over the taps (starting
    from ``init``), then ``store(b, acc, block_offset)``."""
    x_arr, offs_arr, ntaps, nblk = args[:4]
    px = context.make_array(sig.args[0])(context, builder, x_arr).data
    pofs = context.make_array(sig.args[1])(context, builder, offs_arr).data

    def block(b, blk):
        boff = b.mul(blk, ir.Constant(_I64, 64))

        def tap(bb, t, acc):
            off = bb.add(bb.load(bb.gep(pofs, [t])), boff)
            xv = bb.load(bb.bitcast(bb.gep(px, [off]), _V64.as_pointer()), align=1)
            return [step(bb, acc[0], xv)]

        store(b, _fold(b, ntaps, f"{name}.taps", [init], tap)[0], boff)

    _for(builder, nblk, name, block)
    return context.get_dummy_value()


def _maxtaps64_codegen(context, builder, sig, args):
    signed = sig.args[0].dtype == types.int8
    po = builder.gep(context.make_array(sig.args[4])(context, builder, args[4]).data, [args[5]])
    low = _splat(builder, builder.trunc(args[6], _I8), _V64)

    def step(b, acc, xv):
        above = b.icmp_signed(">", xv, acc) if signed else b.icmp_unsigned(">", xv, acc)
        return b.select(above, xv, acc)

    def store(b, acc, boff):
        b.store(acc, b.bitcast(b.gep(po, [boff]), _V64.as_pointer()), align=1)

    return _taps64(context, builder, sig, args, "maxtaps64", low, step, store)


def _sumtaps64_codegen(context, builder, sig, args):
    signed = sig.args[0].dtype == types.int8
    vi64 = ir.VectorType(_I32, 64)
    pacc = context.make_array(sig.args[4])(context, builder, args[4]).data

    def step(b, acc, xv):
        return b.add(acc, b.sext(xv, vi64) if signed else b.zext(xv, vi64))

    def store(b, acc, boff):
        b.store(acc, b.bitcast(b.gep(pacc, [boff]), vi64.as_pointer()), align=4)

    return _taps64(context, builder, sig, args, "sumtaps64", ir.Constant(vi64, [0] * 64), step, store)


def _f32_c(*arrays):
    """Whether the Numba types are contiguous float32 arrays."""
    return all(isinstance(a, types.Array) and a.dtype == types.float32 and a.layout == "C"
               for a in arrays)


def _offsets(offs):
    return isinstance(offs, types.Array) and offs.dtype == types.int64 and offs.layout == "C"


@intrinsic
def maxtaps64(typingctx, x, offs, ntaps, nblk, out, o_off, lowest):
    """Window maxima of 64-channel blocks: for ``b < nblk``,
    ``out[o_off + 64b + j] = max(lowest, x[offs[t] + 64b + j] for t < ntaps)``.

    ``x``, ``out``: contiguous arrays of one 8-bit dtype (signed comparison for
    int8); ``offs``: int64 element offsets of the taps' channel rows; no
    bounds checks.
    """
    if not (_q8_c(x, out) and _offsets(offs)):
        return None
    sig = types.void(x, offs, types.intp, types.intp, out, types.intp, types.int64)
    return sig, _maxtaps64_codegen


@intrinsic
def sumtaps64(typingctx, x, offs, ntaps, nblk, acc):
    """Window sums of 64-channel blocks in int32: for ``b < nblk``,
    ``acc[64b + j] = sum(x[offs[t] + 64b + j] for t < ntaps)`` (wrapping).

    ``x``: a contiguous 8-bit array (int8 values sign-extended); ``offs`` as
    :func:`maxtaps64`; ``acc``: contiguous int32 of at least ``64 * nblk``.
    """
    if not (_q8_c(x) and _offsets(offs) and isinstance(acc, types.Array)
            and acc.dtype == types.int32 and acc.layout == "C"):
        return None
    return types.void(x, offs, types.intp, types.intp, acc), _sumtaps64_codegen


# ------------------------------------------------------------------ channels-last group norm
_VF64 = ir.VectorType(_F32, 64)


def _pixel_bytes(b, px, base, p, stride, signed):
    """The 64 bytes of pixel ``p`` at ``px + base + p * stride`` as float32 lanes."""
    off = b.add(base, b.mul(p, stride))
    xv = b.load(b.bitcast(b.gep(px, [off]), _V64.as_pointer()), align=1)
    return b.sitofp(xv, _VF64) if signed else b.uitofp(xv, _VF64)


def _colsums64_codegen(context, builder, sig, args):
    x_arr, x_off, npix, stride, nblk, s1_arr, s2_arr, s_off = args
    signed = sig.args[0].dtype == types.int8
    px = builder.gep(context.make_array(sig.args[0])(context, builder, x_arr).data, [x_off])
    p1 = builder.gep(context.make_array(sig.args[5])(context, builder, s1_arr).data, [s_off])
    p2 = builder.gep(context.make_array(sig.args[6])(context, builder, s2_arr).data, [s_off])
    vptr = _VF64.as_pointer()

    def block(b, blk):
        boff = b.mul(blk, ir.Constant(_I64, 64))
        q1 = b.bitcast(b.gep(p1, [boff]), vptr)
        q2 = b.bitcast(b.gep(p2, [boff]), vptr)

        def pixel(bb, p, acc):
            v = _pixel_bytes(bb, px, boff, p, stride, signed)
            return [bb.fadd(acc[0], v), bb.fadd(acc[1], bb.fmul(v, v))]

        a1, a2 = _fold(b, npix, "colsums64.pix", [b.load(q1, align=4), b.load(q2, align=4)], pixel)
        b.store(a1, q1, align=4)
        b.store(a2, q2, align=4)

    _for(builder, nblk, "colsums64", block)
    return context.get_dummy_value()


@intrinsic
def colsums64(typingctx, x, x_off, npix, stride, nblk, s1, s2, s_off):
    """Running float32 sums over ``npix`` pixels, 64 channels at a time: for
    block ``k < nblk`` and pixel ``p`` in order,
    ``s1[s_off + 64k + j] += x[x_off + p*stride + 64k + j]`` and ``s2`` the
    same with the square (exact: 8-bit values).  ``x`` contiguous uint8 or
    int8 (the values' type); ``s1``, ``s2`` contiguous float32.  No bounds checks.
    """
    if not (_q8_c(x) and _f32_c(s1, s2)):
        return None
    i = types.intp
    return types.void(x, i, i, i, i, s1, s2, i), _colsums64_codegen


def _affine64_codegen(context, builder, sig, args):
    x_arr, x_off, o_arr, npix, stride, nblk, sc_arr, bi_arr, k_off = args[:9]
    signed = sig.args[0].dtype == types.int8
    px = builder.gep(context.make_array(sig.args[0])(context, builder, x_arr).data, [x_off])
    po = builder.gep(context.make_array(sig.args[2])(context, builder, o_arr).data, [x_off])
    psc = builder.gep(context.make_array(sig.args[6])(context, builder, sc_arr).data, [k_off])
    pbi = builder.gep(context.make_array(sig.args[7])(context, builder, bi_arr).data, [k_off])
    fma = _intrinsic_fn(builder.module, "llvm.fma.v16f32", ir.FunctionType(_VF, [_VF, _VF, _VF]))
    xzp, inv = (_splat(builder, v, _VF) for v in args[9:11])
    zo = _splat(builder, builder.trunc(args[11], _I32), _VI)
    top = ir.Constant(_VF, [2147483520.0] * 16)  # largest float32 below 2**31

    def block(b, blk):
        boff = b.mul(blk, ir.Constant(_I64, 64))
        sc = [b.load(b.bitcast(b.gep(psc, [b.add(boff, ir.Constant(_I64, 16 * q))]), _VF.as_pointer()),
                     align=4) for q in range(4)]
        bi = [b.load(b.bitcast(b.gep(pbi, [b.add(boff, ir.Constant(_I64, 16 * q))]), _VF.as_pointer()),
                     align=4) for q in range(4)]

        def pixel(bb, p):
            base = bb.add(boff, bb.mul(p, stride))
            v4 = []
            for q in range(4):
                off = bb.add(base, ir.Constant(_I64, 16 * q))
                d = bb.fsub(_bytes_f32(bb, px, off, signed), xzp)
                t = bb.fmul(bb.call(fma, [d, sc[q], bi[q]]), inv)
                t = bb.select(bb.fcmp_ordered("<=", t, top), t, top)  # NaN too
                v4.append(bb.add(_cvtps2dq(bb, t), zo))
            bb.store(_pack64(bb, v4, signed), bb.bitcast(bb.gep(po, [base]), _V64.as_pointer()),
                     align=1)

        _for(b, npix, "affine64.pix", pixel)

    _for(builder, nblk, "affine64", block)
    return context.get_dummy_value()


@intrinsic
def affine64(typingctx, x, x_off, out, npix, stride, nblk, sc, bi, k_off, xzp, inv, zo):
    """Group norm's vector quantization of ``npix`` pixels, 64 channels at a
    time: for block ``k`` and pixel ``p``, element ``e = x_off + p*stride +
    64k + j`` and factor index ``f = k_off + 64k + j``::

        y = fma(float(x[e]) - xzp, sc[f], bi[f])
        out[e] = saturate(cvtps2dq(min(fl(y * inv), 2147483520)) + zo)

    ``x``, ``out``: contiguous arrays of one 8-bit dtype (the dtype's whole
    range is the output range); ``sc``, ``bi`` contiguous float32.  No bounds
    checks.
    """
    if not (_q8_c(x, out) and _f32_c(sc, bi)):
        return None
    i, f = types.intp, types.float32
    return types.void(x, i, out, i, i, i, sc, bi, i, f, f, types.int64), _affine64_codegen
