"""CUDA kernels (``numba.cuda``), siblings of ``kernels/cpu`` with the same
function names and argument order.

Importing this package does not import ``numba.cuda``: the submodules do, and
the dispatch table imports them only once a GPU (or the simulator) is known to
be usable.  Kernels compile lazily, on their first launch.

This module holds the launch configuration and the ``cuda.jit`` options in one
place.  Launchers read :data:`config` at every call, so tests can shrink the
blocks to make a few elements span several of them::

    from qops.kernels.cuda import config
    monkeypatch.setattr(config, "threads_per_block", 8)
"""


class LaunchConfig:
    """Grid shape of every 1-D grid-stride launch.

    Attributes
    ----------
    threads_per_block : int
        Threads per block.
    max_blocks : int
        Upper bound on the number of blocks; larger inputs are covered by the
        grid-stride loops (each thread handles several elements).
    """

    __slots__ = ("threads_per_block", "max_blocks")

    def __init__(self, threads_per_block=256, max_blocks=8192):
        self.threads_per_block = threads_per_block
        self.max_blocks = max_blocks

    def blocks(self, n):
        """Blocks for ``n`` elements: one element per thread up to ``max_blocks``."""
        return max(1, min(self.max_blocks, -(-n // self.threads_per_block)))

    def __repr__(self):
        return f"LaunchConfig(threads_per_block={self.threads_per_block}, max_blocks={self.max_blocks})"


#: The configuration every launcher reads.
config = LaunchConfig()

#: ``cuda.jit`` options of the element functions (``kernels/cuda/scalar.py``).
#: No fastmath: NaN, infinity and rounding are part of the contract.  NVVM
#: still contracts ``a*b + c`` into a fused multiply-add (``-fma=1`` is its
#: default), so the recipes round through explicit primitives (see scalar.py).
DEVICE = dict(device=True, fastmath=False)
#: ``cuda.jit`` options of the kernels (``kernels/cuda/quantize.py``).
#: ``cache=False``: a kernel compiles the device functions of scalar.py into
#: itself, and Numba's cache is keyed on the kernel's own file only, so an
#: edit to scalar.py would keep running the stale cached kernel.
KERNEL = dict(fastmath=False, cache=False)
