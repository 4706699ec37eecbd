"""The micro workloads of ``benchmarks.vs_crypten``: one set of inputs for both systems.

Each ``Spec`` draws integer inputs (qbert-mpc's encoding, fixed seeds), their real values
(what CrypTen encrypts), the float function (the plaintext both are compared with) and
qbert-mpc's output as a real value, taken from the protocol's plaintext reference, which
the secure protocol reproduces bit for bit (property tests in tests/). "max err" is
max |output - float function of the same real inputs|, in the output's real units.

qbert-mpc's side runs as ``benchmarks.bench_protocols`` workloads (registered here under
``vs_<name>``), so it is timed by the same code as the protocol micro-benchmarks.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from benchmarks.bench_protocols import WORKLOADS, Workload
from mpc.ring import ring
from protocols import activations as A
from protocols import layernorm as LN
from protocols import softmax as SM

MM_BITS, MM_XS, MM_WS = 24, 16.0, 64.0  # int8 operands; real = int / scale
CMP_BITS, CMP_FRAC = 32, 12  # ReLU / comparison inputs: Z_2^32, real = int / 2^12
GELU_BITS, GELU_C = 24, 8  # GELU: 24-bit accumulator, shift 8 into GELU_IN (frac 3)
LN_BITS, LN_XS = 52, 64.0  # LayerNorm ring; CrypTen gets x / 64 (LN is scale-free)


@dataclass(frozen=True)
class Spec:
    name: str
    what: str
    shape: Callable[[bool], tuple]
    ints: Callable[[tuple], dict]  # shape -> qbert-mpc's integer inputs
    real: Callable[[dict], dict]  # ints -> CrypTen's real inputs
    plain: Callable[[dict], np.ndarray]  # real inputs -> float output
    ours: Callable[[dict], np.ndarray]  # ints -> qbert-mpc's output, real-valued
    setup: Callable  # (rt, ints) -> state of the measured call
    run: Callable  # (rt, state)
    declared: Callable  # shape -> Cost


def _i8(seed, shape, std):
    g = np.random.default_rng(seed)
    return np.clip(np.rint(g.normal(0, std, shape)), -127, 127).astype(np.int64)


# -- matmul ------------------------------------------------------------------------------------
def _mm_ints(shape):
    n, d, m = shape
    return {"x": _i8(11, (n, d), 20), "w": _i8(12, (d, m), 28)}


def _mm_real(v):
    return {"x": v["x"] / MM_XS, "w": v["w"] / MM_WS}


def _mm_ours(v):
    return (v["x"] @ v["w"]) / (MM_XS * MM_WS)  # exact: |x w| < 2^23, no wrap in Z_2^24


def _ss_setup(rt, v):
    r, (n, d), m = ring(MM_BITS), v["x"].shape, v["w"].shape[1]
    x = rt.input(1, r, (1, n, d), r.reduce(v["x"][None]) if rt.rank == 1 else None)
    w = rt.input(2, r, (1, d, m), r.reduce(v["w"][None]) if rt.rank == 2 else None)
    return x, w


def _ss_run(rt, st):
    from protocols.beaver import bmm

    bmm(rt, *st)


def _ss_cost(shape):
    from protocols.beaver import cost_bmm

    n, d, m = shape
    return cost_bmm((1, n, d), (1, d, m), MM_BITS)


def _sp_setup(rt, v):
    from protocols.beaver import prepare_weight

    r, (n, d), m = ring(MM_BITS), v["x"].shape, v["w"].shape[1]
    with rt.scope("weights"):  # once per model, outside the measured scope
        pw = prepare_weight(rt, v["w"] if rt.rank == 2 else None, r, (d, m), owner=2)
    x = rt.input(1, r, (n, d), r.reduce(v["x"]) if rt.rank == 1 else None)
    return x, pw


def _sp_run(rt, st):
    from protocols.beaver import linear

    linear(rt, *st)


def _sp_cost(shape):
    from protocols.beaver import cost_linear

    n, d, m = shape
    return cost_linear((n, d), (d, m), MM_BITS)


# -- comparison / ReLU ---------------------------------------------------------------------------
def _cmp_ints(shape):
    g = np.random.default_rng(13)
    return {"x": np.rint(g.normal(0, 1, shape) * 2**CMP_FRAC).astype(np.int64)}


def _cmp_real(v):
    return {"x": v["x"] / 2**CMP_FRAC}


def _cmp_setup(rt, v):
    r = ring(CMP_BITS)
    return rt.input(1, r, v["x"].shape, r.reduce(v["x"]) if rt.rank == 1 else None)


def _relu_run(rt, x):
    from protocols.relu import relu

    relu(rt, x)


def _drelu_run(rt, x):
    from protocols.compare import drelu

    drelu(rt, x)


def _relu_ours(v):
    from protocols.relu import reference_relu

    r = ring(CMP_BITS)
    return r.signed(reference_relu(r.reduce(v["x"]), CMP_BITS)) / 2**CMP_FRAC


def _drelu_ours(v):
    from protocols.compare import reference_drelu

    return reference_drelu(ring(CMP_BITS).reduce(v["x"]), CMP_BITS).astype(np.float64)


def _cost(module: str, fn: str, *args):
    def cost(shape):
        import importlib

        return getattr(importlib.import_module(module), fn)(shape, *args)

    return cost


# -- softmax -------------------------------------------------------------------------------------
SMF = SM.SoftmaxFormat()


def _sm_ints(shape):
    g = np.random.default_rng(14)
    return {"x": np.rint(g.normal(0, 16, shape)).clip(-128, 127).astype(np.int64)}


def _sm_setup(rt, v):
    r = ring(SMF.in_bits + 1)
    return rt.input(1, r, v["x"].shape, r.reduce(v["x"]) if rt.rank == 1 else None)


def _sm_run(rt, x):
    SM.softmax(rt, x, SMF)


def _sm_ours(v):
    k = SMF.in_bits + 1
    out = SM.reference_softmax(ring(k).reduce(v["x"]), k, SMF)
    return out.astype(np.float64) / SMF.out_one


def _softmax(z):
    z = np.exp(z - z.max(axis=-1, keepdims=True))
    return z / z.sum(axis=-1, keepdims=True)


# -- GELU ----------------------------------------------------------------------------------------
GELU_SCALE = 2.0 ** (GELU_C + A.GELU_IN.frac)  # acc units per real unit


def _gelu_ints(shape):
    g = np.random.default_rng(15)
    return {"x": np.rint(g.normal(0, 1.5, shape) * GELU_SCALE).astype(np.int64)}


def _gelu_setup(rt, v):
    r = ring(GELU_BITS)
    return rt.input(1, r, v["x"].shape, r.reduce(v["x"]) if rt.rank == 1 else None)


def _gelu_run(rt, x):
    A.gelu_requant(rt, x, GELU_C)


def _gelu_ours(v):
    out = A.reference_gelu_requant(ring(GELU_BITS).reduce(v["x"]), GELU_BITS, GELU_C)
    return ring(A.GELU_OUT.bits).signed(out) / 2.0**A.GELU_OUT.frac


# -- LayerNorm -----------------------------------------------------------------------------------
LNF = LN.LayerNormFormat()


def _ln_ints(shape):
    g, d = np.random.default_rng(16), shape[-1]
    x = np.rint(g.normal(0, 300, shape)).clip(-2047, 2047).astype(np.int64)
    return {"x": x, "g": g.integers(200, 300, d), "b": g.integers(-50, 50, d)}


def _ln_real(v):
    s = 2.0**-LNF.gamma_frac
    return {"x": v["x"] / LN_XS, "g": v["g"] * s, "b": v["b"] * s}


def _ln_plain(r):
    x = r["x"]
    xh = (x - x.mean(axis=-1, keepdims=True)) / x.std(axis=-1, keepdims=True)
    return xh * r["g"] + r["b"]  # in output LSBs (int8 units), unclamped


def _ln_setup(rt, v):
    r = ring(LN_BITS)
    x = rt.input(1, r, v["x"].shape, r.reduce(v["x"]) if rt.rank == 1 else None)
    return x, v["g"] if rt.rank == 2 else None, v["b"] if rt.rank == 2 else None


def _ln_run(rt, st):
    LN.layernorm(rt, *st, LNF)


def _ln_ours(v):
    out = LN.reference_layernorm(ring(LN_BITS).reduce(v["x"]), v["g"], v["b"], LN_BITS, LNF)
    return ring(LNF.out_bits).signed(out).astype(np.float64)


def _same(v):
    return {k: np.asarray(a, dtype=np.float64) for k, a in v.items()}


SPECS = {
    s.name: s
    for s in [
        Spec(
            "matmul_ss",
            "X·W, both secret-shared (128×768×768; ours Z_2^24 int8 operands)",
            lambda q: (16, 128, 128) if q else (128, 768, 768),
            _mm_ints,
            _mm_real,
            lambda r: r["x"] @ r["w"],
            _mm_ours,
            _ss_setup,
            _ss_run,
            _ss_cost,
        ),
        Spec(
            "matmul_sp",
            "shared X · owner-private W (ours: masked W reused; CrypTen: W encrypted once)",
            lambda q: (16, 128, 128) if q else (128, 768, 768),
            _mm_ints,
            _mm_real,
            lambda r: r["x"] @ r["w"],
            _mm_ours,
            _sp_setup,
            _sp_run,
            _sp_cost,
        ),
        Spec(
            "relu",
            "ReLU on 1 M elements (ours Z_2^32)",
            lambda q: (1 << 12,) if q else (1 << 20,),
            _cmp_ints,
            _cmp_real,
            lambda r: np.maximum(r["x"], 0),
            _relu_ours,
            _cmp_setup,
            _relu_run,
            _cost("protocols.relu", "cost_relu", CMP_BITS),
        ),
        Spec(
            "compare",
            "[x >= 0] on 1 M elements (DReLU; ours Z_2^32)",
            lambda q: (1 << 12,) if q else (1 << 20,),
            _cmp_ints,
            _cmp_real,
            lambda r: (r["x"] >= 0).astype(np.float64),
            _drelu_ours,
            _cmp_setup,
            _drelu_run,
            _cost("protocols.compare", "cost_msb", CMP_BITS),
        ),
        Spec(
            "softmax",
            "softmax over the last axis [12,128,128] (scores int8 in 1/8)",
            lambda q: (2, 16, 16) if q else (12, 128, 128),
            _sm_ints,
            lambda v: {"x": v["x"] / 2.0**SMF.in_frac},
            lambda r: _softmax(r["x"]),
            _sm_ours,
            _sm_setup,
            _sm_run,
            _cost("protocols.softmax", "cost_softmax", SMF),
        ),
        Spec(
            "gelu",
            "GELU [128,3072] (ours: fused in the requant of a 24-bit accumulator)",
            lambda q: (16, 128) if q else (128, 3072),
            _gelu_ints,
            lambda v: {"x": v["x"] / GELU_SCALE},
            lambda r: A.gelu(r["x"]),
            _gelu_ours,
            _gelu_setup,
            _gelu_run,
            _cost("protocols.activations", "cost_gelu_requant", GELU_C),
        ),
        Spec(
            "layernorm",
            "LayerNorm [128,768], owner-private gamma/beta (error in int8 output LSBs)",
            lambda q: (8, 64) if q else (128, 768),
            _ln_ints,
            _ln_real,
            _ln_plain,
            _ln_ours,
            _ln_setup,
            _ln_run,
            _cost("protocols.layernorm", "cost_layernorm", LN_BITS, LNF),
        ),
    ]
}


def _quick_of(spec: Spec, shape) -> bool:
    return tuple(shape) == tuple(spec.shape(True))


def _register() -> None:
    """Add every spec to ``bench_protocols.WORKLOADS`` as ``vs_<name>``."""
    for s in SPECS.values():

        def setup(rt, shape, rng, s=s):
            return s.setup(rt, s.ints(tuple(shape)))

        def run(rt, shape, state, s=s):
            s.run(rt, state)

        WORKLOADS.setdefault(
            "vs_" + s.name, Workload("vs_" + s.name, s.what, s.shape, run, s.declared, setup)
        )


_register()


def max_error(out, ref) -> float:
    return float(np.max(np.abs(np.asarray(out, np.float64) - np.asarray(ref, np.float64))))


def ours_error(name: str, quick: bool) -> float:
    """qbert-mpc's max error against the float function (see the module docstring)."""
    s = SPECS[name]
    v = s.ints(s.shape(quick))
    return max_error(s.ours(v), s.plain(_same(s.real(v))))
