"""``qops report`` sweeps for :mod:`qops._embedding` (registered on import by :mod:`qops.report`).

Peers: torch 2.13's ``quantized.embedding_bag_{byte,4bit}_prepack`` and
``embedding_bag_{byte,4bit}_rowwise_offsets`` (engine named like the
profile: the kernels are the same for every engine).  Bag sums are float32:
their distance from the ``reference`` profile (the exact sum rounded once)
is in float32 ulp.  The prepack results are bytes; the format is defined by
its construction, so ``reference`` packs the same way.
"""

from __future__ import annotations

import numpy as np

from . import _embedding as E
from .numerics import TORCH_PROFILES
from .report import Case, Sweep, lsb_distance, register, ulp_distance

_PROFILES = TORCH_PROFILES + ("reference",)
_NAME = {8: "byte", 4: "4bit"}


def _table(data, key, n, d):
    """Rows of many magnitudes plus constant, signed-zero and tiny-range rows."""
    rng = data.rng("embedding", *key)
    x = rng.standard_normal((n, d)) * np.exp2(rng.uniform(-12, 12, (n, 1)))
    x[0] = 2.5
    x[1] = np.where(rng.random(d) < 0.5, -0.0, 0.0)
    x[2] = 1.0 + rng.random(d) * 1e-7
    x[3] = rng.integers(-8, 8, d) * 0.5
    return x.astype(np.float32)


def _dims(data):
    return (8, 34) if data.quick else (2, 8, 16, 33, 34, 64, 100)


# ------------------------------------------------------------------ prepack
def _prepack_cases(data, bits):
    out = []
    for d in _dims(data):
        if bits == 4 and d % 2:
            continue
        x = _table(data, ("prepack", bits, d), 64 if data.quick else 512, d)
        out.append(Case(f"{x.shape[0]}x{d} float32", {"x": x}))
    return out


def _prepack_torch(bits):
    def call(peer, case, profile):
        peer.engine(profile)
        fn = getattr(peer.torch.ops.quantized, f"embedding_bag_{_NAME[bits]}_prepack")
        return fn(peer.torch.from_numpy(case.args["x"])).numpy()
    return call


for _bits in (8, 4):
    register(Sweep(
        name=f"embedding_bag_{_NAME[_bits]}_prepack",
        cases=(lambda b: lambda data: _prepack_cases(data, b))(_bits),
        run=(lambda b: lambda case, profile: getattr(E, f"embedding_bag_{_NAME[b]}_prepack")(
            case.args["x"], numerics=profile))(_bits),
        peers={"torch": _prepack_torch(_bits)},
        distance=lsb_distance,
        unit="LSB",
        profiles=_PROFILES,
    ))


# ---------------------------------------------------------------- bag sums
def _bag_cases(data, bits):
    out = []
    for d in _dims(data):
        if bits == 4 and d % 2:
            continue
        key = ("bag", bits, d)
        rng = data.rng(*key)
        n_rows = 40 if data.quick else 300
        packed = getattr(E, f"embedding_bag_{_NAME[bits]}_prepack")(_table(data, key, n_rows, d))
        n = 200 if data.quick else 4000
        idx = rng.integers(0, n_rows, n)
        off = np.sort(rng.integers(0, n, 20 if data.quick else 300))
        off[0] = 0
        for psw in (None, rng.standard_normal(n).astype(np.float32)):
            label = f"{n_rows}x{d} {bits}-bit, {n} indices in {off.size} bags"
            label += ", weighted" if psw is not None else ""
            out.append(Case(label, {"packed": packed, "idx": idx, "off": off, "psw": psw, "bits": bits}))
    return out


def _bag_run(case, profile):
    a = case.args
    return E.embedding_bag(a["idx"], a["packed"], a["off"], per_sample_weights=a["psw"],
                           bit_width=a["bits"], numerics=profile)


def _bag_torch(peer, case, profile):
    a = case.args
    torch = peer.torch
    peer.engine(profile)
    fn = getattr(torch.ops.quantized, f"embedding_bag_{_NAME[a['bits']]}_rowwise_offsets")
    psw = None if a["psw"] is None else torch.from_numpy(a["psw"])
    return fn(torch.from_numpy(a["packed"]), torch.from_numpy(a["idx"]), torch.from_numpy(a["off"]),
              False, 0, False, psw, None, False).numpy()


register(Sweep(
    name="embedding_bag",
    cases=lambda data: _bag_cases(data, 8) + _bag_cases(data, 4),
    run=_bag_run,
    peers={"torch": _bag_torch},
    distance=ulp_distance,
    unit="ulp",
    profiles=_PROFILES,
))


def _emb_cases(data):
    out = []
    for bits in (8, 4):
        key = ("embedding", bits)
        packed = getattr(E, f"embedding_bag_{_NAME[bits]}_prepack")(_table(data, key, 50, 34))
        idx = data.rng(*key).integers(0, 50, (4, 25))
        out.append(Case(f"50x34 {bits}-bit, indices {list(idx.shape)}", {"packed": packed, "idx": idx, "bits": bits}))
    return out


def _emb_torch(peer, case, profile):
    a = case.args
    torch = peer.torch
    peer.engine(profile)
    flat = a["idx"].reshape(-1)
    fn = getattr(torch.ops.quantized, f"embedding_bag_{_NAME[a['bits']]}_rowwise_offsets")
    out = fn(torch.from_numpy(a["packed"]), torch.from_numpy(flat), torch.arange(flat.size),
             False, 0, False, None, None, False).numpy()
    return out.reshape(a["idx"].shape + (out.shape[-1],))


register(Sweep(
    name="embedding",
    cases=_emb_cases,
    run=lambda case, profile: E.embedding(case.args["idx"], case.args["packed"], bit_width=case.args["bits"],
                                          numerics=profile),
    peers={"torch": _emb_torch},
    distance=ulp_distance,
    unit="ulp",
    profiles=_PROFILES,
))
