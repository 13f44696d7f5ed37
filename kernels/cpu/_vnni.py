"""The AVX512-VNNI microkernel: an LLVM loop of ``vpdpbusd`` on 8 zmm accumulators.

``vpdpbusd`` multiplies 4 unsigned bytes by 4 signed bytes and adds the four
products to an int32 lane, with two's-complement wraparound (no saturation):
exactly the int32 accumulator every profile specifies.  The microkernel
computes a 4 x 32 block of raw products ``sum_k x[m, k] * w[n, k]``:

* activations: 4 rows of packed 4-byte k-groups (one int32 word per group),
  each word broadcast to all 16 lanes;
* weights: a panel of 32 columns, ``kg`` groups of 32 words (64 bytes per
  16 columns), packed once by :func:`kernels.cpu.gemm.pack_weight`.

Only compiled on CPUs with AVX512-VNNI (LLVM cannot select the instruction
elsewhere); :mod:`kernels.cpu.gemm` chooses this path at run time.
"""

from llvmlite import ir
from numba import types
from numba.extending import intrinsic

_I32 = ir.IntType(32)
_I64 = ir.IntType(64)
_V16 = ir.VectorType(_I32, 16)
_VPDPBUSD = "llvm.x86.avx512.vpdpbusd.512"

MR = 4  # rows per microkernel call
NR = 32  # columns per microkernel call (two zmm registers)


def _codegen(rows, panels):
    """LLVM for a ``rows x (32*panels)`` block: ``2*rows*panels`` zmm accumulators."""

    def codegen(context, builder, sig, args):
        a_arr, a_off, a_str, b_arr, b_off, b_pstr, kg, c_arr, c_off, c_str = args
        pa = builder.gep(context.make_array(sig.args[0])(context, builder, a_arr).data, [a_off])
        pb = builder.gep(context.make_array(sig.args[3])(context, builder, b_arr).data, [b_off])
        pc = builder.gep(context.make_array(sig.args[7])(context, builder, c_arr).data, [c_off])
        mod = builder.module
        vpdp = mod.globals.get(_VPDPBUSD)
        if vpdp is None:
            vpdp = ir.Function(mod, ir.FunctionType(_V16, [_V16, _V16, _V16]), _VPDPBUSD)
        vptr = _V16.as_pointer()
        zero = ir.Constant(_V16, None)
        undef = ir.Constant(_V16, ir.Undefined)
        pre = builder.block
        fn = builder.function
        head = fn.append_basic_block("vnni.head")
        body = fn.append_basic_block("vnni.body")
        done = fn.append_basic_block("vnni.done")
        builder.branch(head)

        builder.position_at_end(head)
        g = builder.phi(_I64)
        g.add_incoming(ir.Constant(_I64, 0), pre)
        acc = []  # acc[(r * panels + p) * 2 + h]
        for _ in range(2 * rows * panels):
            ph = builder.phi(_V16)
            ph.add_incoming(zero, pre)
            acc.append(ph)
        builder.cbranch(builder.icmp_signed("<", g, kg), body, done)

        builder.position_at_end(body)
        bv = []
        goff = builder.mul(g, ir.Constant(_I64, NR))
        for p in range(panels):
            base = builder.add(builder.mul(ir.Constant(_I64, p), b_pstr), goff)
            row0 = builder.gep(pb, [base])
            bv.append(builder.load(builder.bitcast(row0, vptr), align=4))
            bv.append(builder.load(builder.bitcast(builder.gep(row0, [ir.Constant(_I64, 16)]), vptr),
                                   align=4))
        new = []
        for r in range(rows):
            word = builder.load(builder.gep(pa, [builder.add(builder.mul(ir.Constant(_I64, r), a_str), g)]))
            bc = builder.insert_element(undef, word, ir.Constant(_I32, 0))
            bc = builder.shuffle_vector(bc, undef, zero)  # broadcast lane 0
            for p in range(panels):
                for h in range(2):
                    new.append(builder.call(vpdp, [acc[(r * panels + p) * 2 + h], bc, bv[2 * p + h]]))
        end = builder.block
        g.add_incoming(builder.add(g, ir.Constant(_I64, 1)), end)
        for ph, v in zip(acc, new):
            ph.add_incoming(v, end)
        builder.branch(head)

        builder.position_at_end(done)
        for r in range(rows):
            for p in range(panels):
                for h in range(2):
                    off = builder.add(builder.mul(ir.Constant(_I64, r), c_str),
                                      ir.Constant(_I64, NR * p + 16 * h))
                    builder.store(acc[(r * panels + p) * 2 + h],
                                  builder.bitcast(builder.gep(pc, [off]), vptr), align=4)
        return context.get_dummy_value()

    return codegen


def _microkernel(rows, panels):
    def typer(typingctx, a, a_off, a_stride, b, b_off, b_pstride, kg, c, c_off, c_stride):
        sig = types.void(a, types.intp, types.intp, b, types.intp, types.intp, types.intp, c,
                         types.intp, types.intp)
        return sig, _codegen(rows, panels)

    typer.__name__ = typer.__qualname__ = f"vnni_{rows}x{NR * panels}"
    typer.__doc__ = (
        f"``c[r*c_stride + 32*p + j] = sum_g dot4(a[r*a_stride + g], b[p*b_pstride + g*32 + j])``"
        f" for ``r < {rows}``, ``p < {panels}`` (int32 wrap); ``b_pstride`` is the distance "
        "between consecutive weight panels.  Offsets and strides count int32 words."
    )
    return intrinsic(typer)


#: the main microkernel: MR rows x one 32-column panel, 8 zmm accumulators
vnni_4x32 = _microkernel(MR, 1)
#: 1 row x 4 panels, 2 rows x 2 panels: 8 independent accumulators each, so
#: the rows below a multiple of MR keep the multiply-add unit as busy as 4 x 32
vnni_1x128 = _microkernel(1, 4)
vnni_2x64 = _microkernel(2, 2)
vnni_1x32 = _microkernel(1, 1)
vnni_2x32 = _microkernel(2, 1)
