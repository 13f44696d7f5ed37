"""Numba compilation options, in one place.

Kernels are cached on disk (``cache=True``), stamped with a hash of the whole
``kernels/`` tree (``kernels/_cache.py``), so editing any kernel file, also an
inlined helper, recompiles them.

No fastmath anywhere: NaN, infinity and rounding behaviour are part of every
kernel's contract.  ``error_model="numpy"`` removes Python's division checks
(kernels never divide by values that validation did not vet).
"""

#: Serial CPU kernels and scalar helpers.
CPU = dict(cache=True, nogil=True, error_model="numpy", fastmath=False)
#: Parallel CPU drivers (``prange`` over independent chunks).
CPU_PARALLEL = dict(CPU, parallel=True)
#: Scalar element functions, inlined into the loops that call them.
CPU_INLINE = dict(CPU, inline="always")

#: Elements per parallel work item; below ``PARALLEL_MIN`` elements the
#: serial driver runs (thread start-up would cost more than it saves).
CHUNK = 1 << 15
PARALLEL_MIN = 1 << 17

#: Elements from which a streaming 8-bit kernel (one pass, a few vector
#: instructions per 64 bytes: clamps, table lookups) runs in parts on several
#: threads (:mod:`qops.kernels._split`, Python threads: a ``workqueue``
#: launch costs 0.1-0.3 ms and gains little here).  On the reference machine
#: (whole relu calls, median of 40 back to back, one thread / two parts):
#: 1M bytes 0.029 / 0.029 ms, 2M 0.055 / 0.041 ms, 16M 0.68 / 0.40 ms.
STREAM_PARALLEL_MIN = 1 << 21

#: 8-bit elements from which a requantize between 8-bit types looks its
#: results up in the table of the 256 possible ones instead of computing each
#: (the kernel's own table with AVX512-VBMI; ``qops.requantize`` keeps
#: tables of repeated parameters from this size on as well).
BYTE_TABLE_MIN = 4096
