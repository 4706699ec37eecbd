"""Lookup tables on secret shares with a public table (project notes §4.2).

Tables are integer numpy arrays indexed by the *unsigned* index ``x mod 2^b``: entry ``j``
is the output for every input congruent to ``j``. ``signed_table(fn, b)`` builds a table
indexed by two's complement (entry ``j`` holds ``fn(j - 2^b [j >= 2^(b-1)])``).

One-input LUT ``lut`` (b index bits, n lookups, one table per output domain of m bits):
  offline  P0 draws r in Z_2^b from the seeds (free), rotates T'[j] = T[(j + r) mod 2^b]
           per element and shares T' (P1 from seed, P2 gets 2^b*m bits per lookup and table);
  online   open delta = x - r (b bits per party, 1 round); output <T'[delta]> = <T[x]> by a
           gather of each party's table share at the public delta.
Several tables / output rings share ONE mask and ONE opening (only offline grows).
P1 and P2 never expand their table shares (``TableShare``): P1's share is its seed stream
with P0, of which only the AES counter blocks holding the n gathered entries are computed;
P2 keeps the packed correction bytes and reads the n entries from them. Values, stream
positions and bytes are exactly those of the expanded share.

Multi-input ``lut_multi``: inputs of b_1..b_d bits, the d-dim table rotated by (r_1..r_d);
every delta_i opened in the same round (sum b_i bits per party), 2^(sum b_i)*m bits offline.

One-hot variant ``lut_onehot`` (§4.2b, cheaper offline): P0 XOR-shares e_r (2^b bits per
lookup, whatever the tables); after opening delta each party XORs its e_r share against the
public rotated table (all m bits at once), giving XOR shares of T[x]; a dealer bit-to-
arithmetic conversion (open y xor s, m bits per party, 1 more round, m(m+1)/2 offline bits
per lookup and table) gives additive shares. 2 rounds.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from llvmlite import ir
from numba import njit, types
from numba.core import cgutils
from numba.extending import intrinsic

from mpc.cost import Cost, msg
from mpc.packing import unpack
from mpc.prg import draw_dtype, from_words
from mpc.ring import BOOL, Domain, DomainMismatch, PrimeField, Ring, ring
from mpc.shares import Dual, ShapeMismatch, Shared

U64 = np.uint64
MAX_INDEX_BITS = 16  # hard cap on the index of any table (2^16 entries per lookup)
MULTI_INDEX_BITS = 12  # default cap for multi-input tables
_CHUNK = 1 << 18  # table entries dealt per call: 2 MiB uint64 temporaries stay cache-friendly


# -- tables ---------------------------------------------------------------------------------
def signed_table(fn, b: int) -> np.ndarray:
    """Table of length 2^b whose entry j holds ``fn(s)`` for the two's-complement value s
    of j (so it is indexed by ``x mod 2^b`` for signed x). ``fn`` maps int64 arrays to
    integer arrays."""
    j = np.arange(1 << b, dtype=np.int64)
    return _int_table(fn(j - ((j >> (b - 1)) << b)), 1 << b)


def unsigned_table(fn, b: int) -> np.ndarray:
    """Table of length 2^b with entry j = ``fn(j)``."""
    return _int_table(fn(np.arange(1 << b, dtype=np.int64)), 1 << b)


def _int_table(v, n: int) -> np.ndarray:
    v = np.broadcast_to(np.asarray(v), (n,))
    if v.dtype.kind not in "iub":
        raise TypeError(f"table function must return integers, got {v.dtype}")
    return v.copy()


def _table_values(t, dom: Domain) -> np.ndarray:
    """Validate a public table's entries for output domain ``dom``; canonical uint64."""
    if not isinstance(dom, Domain):
        raise TypeError(f"output domain must be a Ring or PrimeField, got {dom!r}")
    t = np.asarray(t)
    if t.dtype.kind not in "iub":
        raise TypeError(f"table must hold integers, got {t.dtype}")
    if t.size:
        lo = -(dom.modulus // 2) if isinstance(dom, Ring) else -(dom.modulus - 1)
        if int(t.min()) < lo or int(t.max()) >= dom.modulus:
            raise ValueError(f"table entries outside the range of output domain {dom!r}")
    if isinstance(dom, PrimeField):
        return (t.astype(np.int64) % dom.p).astype(U64)
    return dom.reduce(t)


def _narrow_dtype(bits: int):
    for b, dt in ((8, np.uint8), (16, np.uint16), (32, np.uint32)):
        if bits <= b:
            return dt
    return np.uint64


def _size(shape) -> int:
    return int(np.prod(shape, dtype=np.int64))


# -- dealt tables and gathers (shared with protocols.convert) -------------------------------
class TableShare:
    """A computing party's share of n dealt tables of ``width`` entries over ``dom``, not
    expanded: ``gather`` computes only the entries it returns, ``dense`` the whole (n,
    width) array of the narrowest unsigned dtype (equal to the eager share)."""

    def __init__(self, dom: Domain, n: int, width: int):
        self.dom, self.shape = dom, (int(n), int(width))

    def gather(self, idx: np.ndarray) -> np.ndarray:
        idx = _check_gather(self.shape, idx)
        return self._at(idx) if idx.size else np.empty(0, dtype=U64)

    def dense(self) -> np.ndarray:
        return self._all().reshape(self.shape).astype(_narrow_dtype(self.dom.bits))


def _bitwise(dom: Domain) -> bool:
    """1-bit tables (XOR shares) travel packed on P1's side too: its share is its stream's
    bits, entry f of the flat row-major table at bit f mod 8 of byte f / 8 (``pack``'s
    layout), not one stream byte per entry: P0 draws 8x less keystream for them."""
    return isinstance(dom, Ring) and dom.k == 1


def _seed_bytes(dom: Domain, entries: int) -> int:
    """Stream bytes of P1's share of ``entries`` table entries over ``dom``."""
    return (entries + 7) // 8 if _bitwise(dom) else entries * draw_dtype(dom).itemsize


class _SeedTable(TableShare):
    """P1: the share is the stream of ``prg`` from byte ``start`` on (the words
    ``dom.random`` draws, or its bits for a 1-bit table); an entry costs one AES block,
    not the whole row."""

    def __init__(self, dom, n, width, prg, start: int):
        super().__init__(dom, n, width)
        self.prg, self.start, self.dtype = prg, start, draw_dtype(dom)

    def _at(self, idx):
        w = self.shape[1]
        if not _bitwise(self.dom):
            return from_words(self.dom, self.prg.peek_rows(self.dtype, self.start, w, idx))
        if w % 8 == 0:  # rows of whole bytes
            b = self.prg.peek_rows(np.uint8, self.start, w // 8, idx >> U64(3))
        else:
            idx = np.arange(idx.size, dtype=U64) * U64(w) + idx.astype(U64)
            b = self.prg.peek(np.uint8, self.start, idx >> U64(3))
        return (b.astype(U64) >> (idx & U64(7))) & U64(1)

    def _all(self):
        n = self.shape[0] * self.shape[1]
        raw = self.prg.stream_at(self.start, _seed_bytes(self.dom, n))
        if _bitwise(self.dom):
            return np.unpackbits(np.frombuffer(raw, np.uint8), count=n, bitorder="little")
        return from_words(self.dom, np.frombuffer(raw, dtype=self.dtype))


class _PackedTable(TableShare):
    """P2: the share is the packed correction (``dom.bits`` bits per entry, row-major)."""

    def __init__(self, dom, n, width, raw: np.ndarray):
        super().__init__(dom, n, width)
        self.raw = raw

    def _at(self, idx):
        bits, out = self.dom.bits, np.empty(idx.size, dtype=U64)
        if bits in (8, 16, 32, 64):  # byte-aligned: little-endian bytes, read in place
            _aligned_gather_kernel(self.raw, bits // 8, self.shape[1], idx, out)
        else:
            _packed_gather_kernel(self.raw, bits, self.shape[1], idx, out)
        return out

    def _all(self):
        return unpack(self.raw, self.dom.bits, self.shape[0] * self.shape[1])


@intrinsic
def _prefetch(typingctx, arr, pos):  # pragma: no cover - compiled
    """Hint the CPU to load byte ``pos`` of the 1-d array ``arr`` (llvm.prefetch, read)."""

    def codegen(context, builder, sig, args):
        ary = context.make_array(sig.args[0])(context, builder, args[0])
        ptr = cgutils.get_item_pointer(context, builder, sig.args[0], ary, [args[1]])
        i8p, i32 = ir.IntType(8).as_pointer(), ir.IntType(32)
        fn = cgutils.get_or_insert_function(
            builder.module,
            ir.FunctionType(ir.VoidType(), [i8p, i32, i32, i32]),
            "llvm.prefetch.p0i8",
        )
        hint = [ir.Constant(i32, 0), ir.Constant(i32, 0), ir.Constant(i32, 1)]
        builder.call(fn, [builder.bitcast(ptr, i8p), *hint])
        return context.get_dummy_value()

    return types.void(arr, pos), codegen


_AHEAD = 16  # rows prefetched ahead by the gather: each row's entry is its own cache line


@njit(cache=True, nogil=True)
def _aligned_gather_pf(raw, size, width, idx, out):  # pragma: no cover - numba
    """out[i] = little-endian word i*width + idx[i] of ``size`` bytes in ``raw``."""
    n = idx.size
    for i in range(n):
        if i + _AHEAD < n:
            _prefetch(raw, ((i + _AHEAD) * width + np.int64(idx[i + _AHEAD])) * size)
        o = (i * width + np.int64(idx[i])) * size
        v = np.uint64(0)
        for t in range(size):
            v |= np.uint64(raw[o + t]) << np.uint64(8 * t)
        out[i] = v


@njit(cache=True, nogil=True)
def _aligned_gather_plain(raw, size, width, idx, out):  # pragma: no cover - numba
    for i in range(idx.size):
        o = (i * width + np.int64(idx[i])) * size
        v = np.uint64(0)
        for t in range(size):
            v |= np.uint64(raw[o + t]) << np.uint64(8 * t)
        out[i] = v


def _aligned_gather_kernel(raw, size, width, idx, out):
    """The prefetching gather, or the plain one where this LLVM lacks the intrinsic."""
    global _aligned_gather_kernel
    try:
        _aligned_gather_pf(raw[:0], size, width, idx[:0], out[:0])
        _aligned_gather_kernel = _aligned_gather_pf
    except Exception:  # noqa: BLE001 - any compile failure: fall back
        _aligned_gather_kernel = _aligned_gather_plain
    _aligned_gather_kernel(raw, size, width, idx, out)


@njit(cache=True, nogil=True)
def _packed_gather_kernel(raw, bits, width, idx, out):  # pragma: no cover - numba
    """out[i] = element i*width + idx[i] of the little-endian bit stream ``raw`` (bits < 64)."""
    for i in range(idx.size):
        bit = (i * width + np.int64(idx[i])) * bits
        v = np.uint64(0)
        got = 0
        while got < bits:
            sh = bit & 7
            take = min(8 - sh, bits - got)
            byte = (np.uint64(raw[bit >> 3]) >> np.uint64(sh)) & np.uint64((1 << take) - 1)
            v |= byte << np.uint64(got)
            got += take
            bit += take
        out[i] = v


def _lazy_share(rt, dom: Domain, n: int, width: int) -> TableShare:
    """P1: remember its stream position and move the stream past the share, as drawing it
    would. P2: take the correction bytes (same bytes and accounting as ``Runtime.take``,
    without unpacking them)."""
    if rt.rank == 1:
        prg = rt.prg(0)
        start = prg.drawn
        prg.skip(_seed_bytes(dom, n * width))
        return _SeedTable(dom, n, width, prg, start)
    nbytes = dom.nbytes(n * width)
    raw = np.frombuffer(rt.take_raw(nbytes), dtype=np.uint8)
    return _PackedTable(dom, n, width, raw)


def deal_tables(rt, dom: Domain, n: int, width: int, build, lazy: bool = False):
    """Share n dealer-built tables of ``width`` entries over ``dom`` (P1 from its seed, P2
    a correction of n*width elements). ``build(lo, hi)`` (called on P0 only) returns the
    plaintext rows lo..hi as integers (hi-lo, width). P1/P2 get their share as an (n, width)
    array of the narrowest unsigned dtype, or with ``lazy`` as a ``TableShare`` (for
    ``gather``; same stream position and material consumed); P0 gets None. Dealt in row
    chunks (multiples of 8 rows, so the packed bytes equal one big message) to bound
    memory."""
    if lazy and not rt.is_dealer:
        return _lazy_share(rt, dom, n, width)
    if _bitwise(dom):
        if rt.is_dealer:
            return deal_fused(rt, n, width, lambda lo, hi, out: _pack_bits(build(lo, hi), out))
        return _eager_bits(rt, dom, n, width)
    rows = _chunk_rows(width)
    out = None if rt.is_dealer else np.empty((n, width), dtype=_narrow_dtype(dom.bits))
    for lo in range(0, n, rows):
        hi = min(n, lo + rows)
        if rt.is_dealer:
            rt.dealer_shared(dom, (hi - lo, width), build(lo, hi))
        else:
            out[lo:hi] = rt.dealer_shared(dom, (hi - lo, width)).data
    return out


def _pack_bits(rows: np.ndarray, out: np.ndarray) -> None:
    out[:] = np.packbits(np.asarray(rows).astype(np.uint8) & np.uint8(1), bitorder="little")


def _eager_bits(rt, dom: Domain, n: int, width: int) -> np.ndarray:
    """P1/P2: an expanded 1-bit table share (P1's from its stream's bits, ``_bitwise``)."""
    rows = _chunk_rows(width)
    out = np.empty((n, width), dtype=np.uint8)
    for lo in range(0, n, rows):
        hi = min(n, lo + rows)
        if rt.rank == 1:
            raw = rt.prg(0).words(np.uint8, (_seed_bytes(dom, (hi - lo) * width),))
            bits = np.unpackbits(raw, count=(hi - lo) * width, bitorder="little")
            out[lo:hi] = bits.reshape(hi - lo, width)
        else:
            out[lo:hi] = rt.take(dom, (hi - lo, width), np.uint8)
    return out


def _chunk_rows(width: int) -> int:
    return max(8, (_CHUNK // max(width, 1)) // 8 * 8)


def deal_fused(rt, n: int, width: int, table) -> None:
    """P0's side of ``deal_tables`` for n 1-bit tables of ``width`` entries (same chunks,
    same material): ``table(lo, hi, out)`` ORs the packed bits of rows lo..hi into the
    zeroed uint8 ``out`` (``pack``'s layout, entry f at bit f mod 8 of byte f / 8);
    P2's correction is that XOR P1's stream bytes (``_bitwise``). No plaintext table of
    one byte per entry."""
    rows = _chunk_rows(width)
    for lo in range(0, n, rows):
        hi = min(n, lo + rows)
        nbytes = _seed_bytes(BOOL, (hi - lo) * width)
        out = np.zeros(nbytes, dtype=np.uint8)
        table(lo, hi, out)
        out ^= rt.prg(1).words(np.uint8, (nbytes,))
        rt.deal_raw(2, out)


@njit(cache=True, nogil=True)
def _masked_kernel(x, r, mask, out):  # pragma: no cover - numba
    """out = (x - r) mod 2^b (mask = 2^b - 1) in out's narrow dtype."""
    for i in range(out.size):
        out[i] = (x[i] - r[i]) & mask


@njit(cache=True, nogil=True)
def _gather_kernel(tab, idx, out):  # pragma: no cover - numba
    for i in range(idx.size):
        out[i] = tab[i, idx[i]]


def _check_gather(shape, idx) -> np.ndarray:
    """Flat contiguous indices (unsigned dtypes kept as they are, others as uint64)."""
    idx = np.asarray(idx)
    idx = np.ascontiguousarray(idx if idx.dtype.kind == "u" else idx.astype(U64)).reshape(-1)
    if idx.size != shape[0] or (idx.size and int(idx.max()) >= shape[1]):
        raise ValueError("gather index out of range")
    return idx


def gather(tab, idx: np.ndarray) -> np.ndarray:
    """Row-wise gather ``tab[i, idx[i]]`` for an (n, W) table (array or ``TableShare``)
    and n indices < W, as uint64 (numba kernel: no index temporaries, releases the GIL)."""
    if isinstance(tab, TableShare):
        return tab.gather(idx)
    idx = _check_gather(tab.shape, idx)
    out = np.empty(idx.size, dtype=U64)
    _gather_kernel(np.ascontiguousarray(tab), idx, out)
    return out


def rotated_index(masks: list[np.ndarray], bits: list[int]) -> np.ndarray:
    """(n, 2^sum(bits)) flat indices of the table rotated by the per-element masks: entry
    (j_1..j_d) of row i is the row-major flat index of ((j_1 + r_1[i]) .. (j_d + r_d[i]))."""
    n = masks[0].size
    idx = np.zeros((n, 1), dtype=U64)
    for r, b in zip(masks, bits, strict=True):
        rot = (r.reshape(-1, 1) + np.arange(1 << b, dtype=U64)) & U64((1 << b) - 1)
        idx = ((idx[:, :, None] << U64(b)) | rot[:, None, :]).reshape(n, -1)
    return idx


def rotate(t: np.ndarray, shifts: np.ndarray) -> np.ndarray:
    """(n, W) rows t[(j + shifts[i]) mod W] of a flat table t of W entries (one strided copy
    per row from the doubled table, no index arithmetic)."""
    w = t.shape[0]
    win = np.lib.stride_tricks.sliding_window_view(np.concatenate([t, t]), w)
    return win[(np.asarray(shifts, dtype=U64) & U64(w - 1)).astype(np.intp).reshape(-1)]


def flat_index(deltas: list[np.ndarray], bits: list[int]) -> np.ndarray:
    idx = np.zeros(deltas[0].shape, dtype=U64)
    for d, b in zip(deltas, bits, strict=True):
        idx = (idx << U64(b)) | d
    return idx


# -- validation -----------------------------------------------------------------------------
def _check_inputs(xs, bits, limit: int) -> list[int]:
    if not xs:
        raise ValueError("a lookup needs at least one input")
    for x in xs:
        if not isinstance(x, Shared) or not isinstance(x.dom, Ring):
            raise DomainMismatch(f"LUT inputs must be shares over a ring, got {x!r}")
        if x.shape != xs[0].shape:
            raise ShapeMismatch(f"LUT inputs of shapes {xs[0].shape} and {x.shape}")
    bits = [x.dom.k for x in xs] if bits is None else [int(b) for b in bits]
    if len(bits) != len(xs):
        raise ValueError(f"{len(xs)} inputs but {len(bits)} index widths")
    for x, b in zip(xs, bits, strict=True):
        if b < 1:
            raise ValueError(f"index width must be >= 1, got {b}")
        if b > MAX_INDEX_BITS:
            raise ValueError(f"index of {b} bits: tables are limited to {MAX_INDEX_BITS} bits")
        if x.dom.k < b:
            raise DomainMismatch(f"input over {x.dom!r} cannot index a 2^{b}-entry table")
    total = sum(bits)
    if total > min(limit, MAX_INDEX_BITS):
        raise ValueError(
            f"table of 2^{total} entries per lookup (index bits {bits}) exceeds the limit of "
            f"2^{min(limit, MAX_INDEX_BITS)}; raise max_index_bits (<= {MAX_INDEX_BITS})"
        )
    return bits


def _check_tables(tables, bits: list[int]) -> list[tuple[np.ndarray, Domain]]:
    if not tables:
        raise ValueError("a lookup needs at least one output table")
    want = tuple(1 << b for b in bits)
    out = []
    for item in tables:
        if not (isinstance(item, tuple) and len(item) == 2):
            raise TypeError("tables must be a list of (table, output domain) pairs")
        t, dom = item
        dom = ring(dom) if isinstance(dom, int) else dom
        t = np.asarray(t)
        if t.shape != want and not (len(bits) > 1 and t.shape == (int(np.prod(want)),)):
            raise ValueError(f"table of shape {t.shape}, expected {want} (2^b per input)")
        out.append((_table_values(t, dom).reshape(-1), dom))
    return out


# -- one protocol core for one- and multi-input tables ---------------------------------------
@dataclass
class LutKey:
    """Correlations of one batch of lookups: mask shares (P1/P2) and table shares."""

    shape: tuple[int, ...]
    bits: list[int]
    doms: list[Domain]
    masks: list  # Shared per input (P1/P2) or plaintext r (P0)
    tabs: list  # (n, 2^sum(bits)) TableShare (P1/P2) or None (P0)


def lut_offline(rt, shape, bits: list[int], tables) -> LutKey:
    """Correlations for ``lut_online`` (tables already validated, canonical, flat)."""
    shape, n, w = tuple(shape), _size(shape), 1 << sum(bits)
    masks = [rt.random_shared(ring(b), shape) for b in bits]
    tabs = []
    for t, dom in tables:

        def build(lo, hi, t=t):
            rows = [m.reshape(-1)[lo:hi] for m in masks]
            return rotate(t, rows[0]) if len(bits) == 1 else t[rotated_index(rows, bits)]

        tabs.append(deal_tables(rt, dom, n, w, build, lazy=True))
    return LutKey(shape, bits, [d for _, d in tables], masks, tabs)


def lut_online(rt, xs: list[Shared], key: LutKey) -> list[Shared]:
    """Open every delta_i = x_i - r_i in one exchange and gather the table shares."""
    if rt.is_dealer:
        return [Shared.phantom(d, key.shape) for d in key.doms]
    dt = _narrow_dtype(max(key.bits))  # every delta has <= 16 bits: no uint64 temporaries
    ds = [np.empty(x.size, dtype=dt) for x in xs]
    for x, m, d, b in zip(xs, key.masks, ds, key.bits, strict=True):
        _masked_kernel(x.data.reshape(-1), m.data.reshape(-1), (1 << b) - 1, d)
    others = rt.exchange([(ring(b), d) for d, b in zip(ds, key.bits, strict=True)], dt)
    for d, o, b in zip(ds, others, key.bits, strict=True):
        np.add(d, o, out=d)
        d &= dt((1 << b) - 1)
    idx = ds[0] if len(ds) == 1 else flat_index([d.astype(U64) for d in ds], key.bits)
    return [
        Shared(dom, gather(t, idx).reshape(key.shape), rt.rank)
        for t, dom in zip(key.tabs, key.doms, strict=True)
    ]


def lut_multi(rt, xs: list[Shared], tables, bits=None, max_index_bits=MULTI_INDEX_BITS):
    """Multi-input LUT: ``tables`` is a list of (T, dom) with T of shape (2^b_1, .., 2^b_d)
    (index b_i bits of x_i, default the width of x_i's ring). Returns one share per table
    of T[x_1 mod 2^b_1, .., x_d mod 2^b_d]. Cost: ``cost_lut_multi``."""
    bits = _check_inputs(list(xs), bits, max_index_bits)
    tabs = _check_tables(tables, bits)
    return lut_online(rt, list(xs), lut_offline(rt, xs[0].shape, bits, tabs))


def lut(rt, x: Shared, tables, bits: int | None = None) -> list[Shared]:
    """One-input LUT: ``tables`` is a list of (T, dom), each T of length 2^b indexed by
    x mod 2^b (b = ``bits``, default the width of x's ring, at most 16). Returns a list of
    shares of T[x mod 2^b], one per table, all from one mask and one opening."""
    bits_l = _check_inputs([x], None if bits is None else [bits], MAX_INDEX_BITS)
    tabs = _check_tables(tables, bits_l)
    return lut_online(rt, [x], lut_offline(rt, x.shape, bits_l, tabs))


def lut_dual(
    rt,
    x: Shared,
    table,
    narrow_bits: int,
    wide_bits: int,
    narrow_table=None,
    bits: int | None = None,
) -> Dual:
    """The table's output both in Z_2^narrow and Z_2^wide. With one table (default) only
    the wide table is dealt and the narrow share is its free reduction; a different
    ``narrow_table`` rides on the same mask (one opening, one more dealt table)."""
    if not 1 <= narrow_bits < wide_bits <= 64:
        raise DomainMismatch(f"dual rings need narrow < wide, got {narrow_bits}, {wide_bits}")
    tables = [(table, ring(wide_bits))]
    if narrow_table is not None:
        tables.append((narrow_table, ring(narrow_bits)))
    outs = lut(rt, x, tables, bits)
    narrow = outs[1] if narrow_table is not None else outs[0].reduce(narrow_bits)
    return Dual(narrow, outs[0])


# -- references and costs -------------------------------------------------------------------
def reference_lut_multi(xs, tables, bits) -> list[np.ndarray]:
    """T[x_1 mod 2^b_1, ..] in each table's domain (canonical uint64)."""
    xs = [np.asarray(x, dtype=U64) & U64((1 << b) - 1) for x, b in zip(xs, bits, strict=True)]
    idx = flat_index(xs, list(bits)).astype(np.intp)
    return [_table_values(t, d).reshape(-1)[idx] for t, d in tables]


def reference_lut(x, tables, bits: int) -> list[np.ndarray]:
    return reference_lut_multi([x], tables, [bits])


def cost_lut_multi(shape, bits, out_doms) -> Cost:
    n, w = _size(shape), 1 << sum(bits)
    on = sum(msg(ring(b), n) for b in bits)
    return Cost((on, on), (0, sum(msg(d, n * w) for d in out_doms)), 1)


def cost_lut(shape, bits: int, out_doms) -> Cost:
    """b bits per party online, 1 round; 2^b*m bits offline to P2 per lookup and table."""
    return cost_lut_multi(shape, [bits], out_doms)


def cost_lut_dual(shape, bits: int, narrow_bits: int, wide_bits: int, two_tables=False):
    doms = [ring(wide_bits)] + ([ring(narrow_bits)] if two_tables else [])
    return cost_lut(shape, bits, doms)


# -- one-hot variant (§4.2b) ----------------------------------------------------------------
def lut_onehot(rt, x: Shared, tables, bits: int | None = None) -> list[Shared]:
    """One-hot LUT: ``tables`` is a list of (T, m) with T of length 2^b and outputs in
    Z_2^m. Returns shares of T[x mod 2^b]. Cost: ``cost_lut_onehot`` (2 rounds)."""
    b = _check_inputs([x], None if bits is None else [bits], MAX_INDEX_BITS)[0]
    tabs = _check_tables([(t, ring(m)) for t, m in tables], [b])
    shape, n, w = x.shape, x.size, 1 << b
    r = rt.random_shared(ring(b), shape)
    e = deal_tables(
        rt,
        BOOL,
        n,
        w,
        lambda lo, hi: (r.reshape(-1)[lo:hi, None] == np.arange(w, dtype=U64)).astype(U64),
    )
    conv = []  # per table: XOR shares of mask bits s (n, m) and their arithmetic shares
    for _, dom in tabs:
        s = rt.random_shared(BOOL, (n, dom.k))
        arith = [
            rt.dealer_shared(ring(dom.k - t), (n,), s[:, t] if rt.is_dealer else None)
            for t in range(dom.k)
        ]
        conv.append((s, arith))
    if rt.is_dealer:
        return [Shared.phantom(d, shape) for _, d in tabs]
    dx = x.reduce(b) - r
    (o,) = rt.exchange([(dx.dom, dx.data)])
    delta = dx.dom.add(dx.data, o).reshape(-1, 1)
    rot = ((delta + np.arange(w, dtype=U64)) & U64(w - 1)).astype(np.intp)
    on = e.astype(bool)
    sends = []
    for (t, dom), (s, _) in zip(tabs, conv, strict=True):
        y = np.bitwise_xor.reduce(np.where(on, t[rot], U64(0)), axis=1)
        ybits = (y[:, None] >> np.arange(dom.k, dtype=U64)) & U64(1)
        sends.append((BOOL, ybits ^ s.data))
    opened = rt.exchange(sends)
    outs = []
    for (_, dom), (_, arith), (_, mine), other in zip(tabs, conv, sends, opened, strict=True):
        ob = mine ^ other  # y xor s, public
        acc = np.zeros(n, dtype=U64)
        for t, a in enumerate(arith):  # <y_t> = o + <s>(1 - 2o) in Z_2^(m-t), times 2^t
            v = a.data * (U64(1) - U64(2) * ob[:, t])
            if rt.rank == 1:
                v = v + ob[:, t]
            acc += v << U64(t)
        outs.append(Shared(dom, (acc & dom.mask).reshape(shape), rt.rank))
    return outs


def reference_lut_onehot(x, tables, bits: int) -> list[np.ndarray]:
    return reference_lut(x, [(t, ring(m)) for t, m in tables], bits)


def cost_lut_onehot(shape, bits: int, out_bits) -> Cost:
    """Online b + sum(m) bits per party, 2 rounds; offline 2^b + sum m(m+1)/2 bits."""
    n = _size(shape)
    on = msg(ring(bits), n) + sum(msg(BOOL, n * m) for m in out_bits)
    off = msg(BOOL, n << bits) + sum(msg(ring(m - t), n) for m in out_bits for t in range(m))
    return Cost((on, on), (0, off), 2)
