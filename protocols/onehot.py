"""One-hot lookups with a bit-to-arithmetic output stage (project notes §4.2b): dealer
material ~2^b bits per lookup instead of 2^b m bits, outputs in any ring Z_2^M.

Tables are public integer arrays; each output table has m bits (two's complement if it
has negative entries) and goes to its own ring Z_2^M (M >= m), so a requant emits directly
in the consumer's ring (no ring extension after it).

``requant`` (exact floor, same semantics and reference as ``convert.requant(exact=True)``):
acc over Z_2^B, mask r = r_h 2^c + r_l from the seeds (free), dealer bit u.
  offline  the carry tables of ``convert.deal_carry`` (XOR shares of k xor u); the one-hot
           vector e of (u, r_h) over 2 x 2^hb positions (hb = B - c), XOR-shared (P1 from
           its seed, P2 2^(hb+1) bits, whole 64-bit words); per slot t' in {0, 1} random
           mask bits s_t' (free) and arithmetic shares of every bit of s_t' over
           Z_2^(M - j) for table bit j (sum_j (M - j) bits per slot).
  online   open delta = acc - r (B bits); [digit states, 2 bits per digit]; each party
           computes XOR shares of both candidates y_t' = T[d_h + r_h + (t' xor u)] =
           D_0(d_h + t') xor D_1(d_h + 1 - t'), D_v(s) = xor_j e[v, j] T[s + j] (bit-sliced
           kernel), and opens t = k xor u with y_0 xor s_0 and y_1 xor s_1 in ONE round
           (1 + 2 sum m bits); then y = y_t, whose arithmetic bits are
           o_j + (1 - 2 o_j) <s_t,j> (o = y_t xor s_t public), summed with weights 2^j
           (-2^(m-1) for a sign bit). Rounds: 2 (one carry digit) or 3.
Both candidates are opened so the bit-to-arithmetic step needs no extra round; the
dealer's arithmetic bits are dealt for both slots (the selected one is used).

Difference form (chosen per call when it deals fewer bits: tables whose steps
DT[j] = T[j + 1] - T[j] take few distinct values, e.g. clamps {1, wrap}, GELU {-1, 1, 2,
wrap}): y = T[a + k] = T[a] + k DT[a], a = d_h + r_h, with ONE one-hot e at r_h (2^hb
bits) and DT[a] = sum_v v [DT[a] = v] (indicator planes d_v). Same rounds: the last one
opens t = k xor u, T[a] xor s and d_v xor beta_v; then k d_v = (t xor u)(D_v xor beta_v)
is linear in dealt <u>, <beta_v>, <u beta_v> with public coefficients (t, D_v). Online
1 + sum m + P bits (P planes) instead of 1 + 2 sum m; offline 2^hb + sum_j (M - j) +
sum_v 2 (M - tz(v)) + M per table instead of 2^(hb+1) + 2 sum_j (M - j). Opened bits are
one-time padded by fresh dealer bits, so the view is uniform in both forms.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import numpy as np
from numba import njit

from mpc.cost import Cost, msg
from mpc.packing import pack_diff_rows, rows_size
from mpc.prg import PRG, draw_dtype, fresh_seed, from_words
from mpc.ring import BOOL, DomainMismatch, Ring, ring, signed_width
from mpc.shares import Shared
from protocols import convert as C
from protocols.lut import MULTI_INDEX_BITS
from protocols.onehotvec import WORD, deal_onehot, parity
from protocols.steps import run

U64 = np.uint64


# -- tables ---------------------------------------------------------------------------------
def table_bits(t: np.ndarray) -> tuple[int, bool]:
    """(m, signed): the width of a table's entries (two's complement if any is negative;
    uint64 tables are unsigned)."""
    t = np.asarray(t)
    if t.dtype == U64:
        return max(int(t.max()).bit_length(), 1), False
    t = t.astype(np.int64)
    lo, hi = int(t.min()), int(t.max())
    if lo < 0:
        return signed_width(lo, hi), True
    return max(hi.bit_length(), 1), False


def _check_tables(tables, hb: int):
    """[(T int64, m, signed, M)] from (T, ring or width[, m]) items; T of length 2^hb. A
    given m (at least the entries' width) fixes the output bits whatever the entries."""
    out = []
    if not tables:
        raise ValueError("a lookup needs at least one output table")
    for item in tables:
        t, d = item[0], item[1]
        M = d.k if isinstance(d, Ring) else int(d)
        t = np.asarray(t)
        if t.dtype.kind not in "iu" or t.shape != (1 << hb,):
            raise ValueError(f"table must be integers of shape ({1 << hb},), got {t.shape}")
        m, sg = table_bits(t)
        if len(item) > 2:
            if int(item[2]) < m:
                raise ValueError(f"table entries need {m} bits, {item[2]} given")
            m = int(item[2])
        if not 1 <= m <= M <= 64:
            raise ValueError(f"table entries of {m} bits do not fit the output ring Z2^{M}")
        out.append(
            (t.astype(U64).view(np.int64) if t.dtype == U64 else t.astype(np.int64), m, sg, M)
        )
    return out


def _bit_layout(tabs):
    """Per output bit (in table order): its table index, position j, ring width M - j."""
    return [(i, j, M - j) for i, (_, m, _, M) in enumerate(tabs) for j in range(m)]


def table_planes(tabs, hb: int) -> np.ndarray:
    """(K, Wh) uint64 bit planes of the concatenated output bits of ``tabs``: bit b of word w
    of plane k is bit k of entry 64 w + b (K = sum m, Wh = ceil(2^hb / 64))."""
    N = 1 << hb
    bits = np.stack([(t.astype(U64) >> U64(j)) & U64(1) for t, m, _, _ in tabs for j in range(m)])
    pad = np.zeros((bits.shape[0], -(-N // 64) * 64), dtype=np.uint8)
    pad[:, :N] = bits
    packed = np.packbits(pad.reshape(pad.shape[0], -1, 64), axis=-1, bitorder="little")
    return np.ascontiguousarray(packed.view("<u8")[..., 0])


# -- kernel ---------------------------------------------------------------------------------
@njit(cache=True, nogil=True, boundscheck=False)
def _rot_dot_kernel(e, sh, planes, N, out):  # pragma: no cover - numba
    """out[i, k] = parity(R_i & planes[k]) with R_i = xor_v rot_{-sh[i, v]}(e[i, v]), the
    one-hot share rotated so that R_i[j] = xor_v e[i, v, (j - sh[i, v]) mod N]: then
    <R_i, T_k> = xor_v xor_j e[i, v, j] T_k[(sh[i, v] + j) mod N] = bit k of xor_v
    D_v(sh[i, v]). The table stays in L1; no rotated copies of it (e: (n, V, Wh) words,
    planes: (K, Wh), out: (n, K) uint8; 0 <= sh < N)."""
    n, V, Wh = e.shape[0], e.shape[1], e.shape[2]
    K = planes.shape[0]
    if N < 64:  # one word: R_i in a register
        low, nn = np.uint64((1 << N) - 1), np.uint64(N)
        for i in range(n):
            R = np.uint64(0)
            for v in range(V):
                s, x = np.uint64(sh[i, v]), e[i, v, 0] & low
                R ^= ((x << s) | (x >> (nn - s))) & low
            for k in range(K):
                out[i, k] = parity(R & planes[k, 0])
        return
    R = np.zeros(Wh, dtype=np.uint64)
    m = Wh - 1  # Wh is a power of two
    for i in range(n):
        R[:] = 0
        for v in range(V):
            s, ev = sh[i, v], e[i, v]
            q, r = Wh - (s >> 6), np.uint64(s & 63)
            if r == 0:
                for w in range(Wh):
                    R[w] ^= ev[(w + q) & m]
            else:
                rr = np.uint64(64) - r
                for w in range(Wh):
                    R[w] ^= (ev[(w + q) & m] << r) | (ev[(w + q - 1) & m] >> rr)
        for k in range(K):
            acc, pk = np.uint64(0), planes[k]
            for w in range(Wh):
                acc ^= R[w] & pk[w]
            out[i, k] = parity(acc)


def dot_bits(e: np.ndarray, sh: np.ndarray, planes: np.ndarray, hb: int) -> np.ndarray:
    """(n, K) XOR shares of the output bits of xor_v D_v(sh[:, v]) (see module doc), for
    the K bit planes ``table_planes`` packed."""
    n, N = e.shape[0], 1 << hb
    sh = (np.asarray(sh, dtype=U64) % U64(N)).astype(np.int64).reshape(n, -1)
    out = np.empty((n, planes.shape[0]), dtype=np.uint8)
    _rot_dot_kernel(e, sh, planes, N, out)
    return out


def slot_bits(e: np.ndarray, dh: np.ndarray, planes: np.ndarray, hb: int) -> np.ndarray:
    """(2, n, K) XOR shares of both requant candidates y_t' = D_0(dh + t') xor
    D_1(dh + 1 - t') (see module doc)."""
    dh = dh.astype(np.int64)
    sh = [np.stack([dh + t, dh + 1 - t], axis=1) for t in (0, 1)]
    return np.stack([dot_bits(e, x, planes, hb) for x in sh])


# -- dealing --------------------------------------------------------------------------------
def _width_groups(layout):
    """{ring width: [bit columns]} of the arithmetic mask bits."""
    groups: dict[int, list[int]] = {}
    for col, (_, _, w) in enumerate(layout):
        groups.setdefault(w, []).append(col)
    return groups


def _word_groups(layout) -> list[tuple[np.dtype, list[int], np.ndarray]]:
    """The arithmetic columns by word type: [(dtype, columns, their ring widths)], narrow
    to wide (columns of equal width side by side), as ``deal_b2a`` lays them out."""
    by: dict = {}
    for w, cols in sorted(_width_groups(layout).items()):
        by.setdefault(draw_dtype(ring(w)), []).extend((c, w) for c in cols)
    return [(dt, [c for c, _ in g], np.array([w for _, w in g], np.int64)) for dt, g in by.items()]


def deal_b2a(rt, s, n: int, layout, slots: int = 2) -> list | None:
    """Arithmetic shares of the mask bits s (P0: (slots, n, K) 0/1): per word type one
    (slots, n, cols) array of shares (``_word_groups``), so a kernel makes one pass per
    word type. P1 draws it from its seed; P2 gets the correction in one message, each
    column packed to its ring width (``pack_rows``). Shares stay unreduced words: a share
    over Z_2^(M-j) is only used times 2^j mod 2^M, where bits above M - j vanish. P1/P2
    get [(columns, shares)]."""
    out = []
    for dt, cols, widths in _word_groups(layout):
        shape = (slots, n, len(cols))
        if rt.is_dealer:  # P2's correction s - P1's words, packed in one pass
            rt.deal_raw(2, pack_diff_rows(s, cols, rt.prg(1).words(dt, shape), widths))
        elif rt.rank == 1:
            out.append((cols, rt.prg(0).words(dt, shape)))
        else:
            out.append((cols, rt.take_rows(widths, slots * n, dt).reshape(shape)))
    return None if rt.is_dealer else out


def _b2a_bytes(n: int, layout, slots: int) -> int:
    """Offline bytes of ``deal_b2a``: one packed message per word type."""
    return sum(rows_size(slots * n, w) for _, _, w in _word_groups(layout))


@njit(cache=True, nogil=True, boundscheck=False)
def _b2a_kernel(o, t, sh, cols, tab, pos, neg, public, accs):  # pragma: no cover - numba
    """accs[i, tab[c]] +-= (o_b + (1 - 2 o_b) <s_b>) 2^pos[c] (mod the word) for the mask-bit
    shares sh[t_i, i, c] of output bit b = cols[c] of slot t_i (o_b added by P1 only:
    ``public``); subtracted for a sign bit (neg[c]). Runs of columns of one table sum in a
    register (one store per run, not a read-modify-write per column)."""
    n, C = t.shape[0], cols.shape[0]
    one, two = np.uint64(1), np.uint64(2)
    for i in range(n):
        ti = t[i]
        run, cur = np.uint64(0), tab[0] if C else 0
        for c in range(C):
            if tab[c] != cur:
                accs[i, cur] += run
                run, cur = np.uint64(0), tab[c]
            ob = np.uint64(o[ti, i, cols[c]])
            v = np.uint64(sh[ti, i, c]) * (one - two * ob)
            if public:
                v += ob
            v <<= np.uint64(pos[c])
            if neg[c]:
                v = -v
            run += v
        if C:
            accs[i, cur] += run


def _b2a_accs(rt, tabs, layout, o: np.ndarray, t: np.ndarray, arith: list) -> np.ndarray:
    """(n, tables) arithmetic share words of the selected slot's bits: o (slots, n, K)
    public bits, t (n,) public slot."""
    n = t.size
    t = t.astype(np.int64)
    # one element's outputs side by side, in the narrowest word holding every ring (sums
    # wrap mod 2^word, a multiple of each 2^M): 31 thermometer bits over Z_2^8 take 8x less
    accs = np.zeros((n, len(tabs)), dtype=draw_dtype(ring(max(M for *_, M in tabs))))
    for cols, sh in arith:
        tab = np.array([layout[c][0] for c in cols], dtype=np.int64)
        pos = np.array([layout[c][1] for c in cols], dtype=np.int64)
        neg = np.array(
            [tabs[layout[c][0]][2] and layout[c][1] == tabs[layout[c][0]][1] - 1 for c in cols],
            np.bool_,
        )
        _b2a_kernel(o, t, sh, np.asarray(cols, np.int64), tab, pos, neg, rt.rank == 1, accs)
    return accs


def _shares_of(tabs, accs: np.ndarray, shape, rank: int) -> list[Shared]:
    return [
        Shared(ring(M), np.ascontiguousarray(from_words(ring(M), a)).reshape(shape), rank)
        for a, (_, _, _, M) in zip(accs.T, tabs, strict=True)
    ]


def b2a_outputs(rt, tabs, layout, o: np.ndarray, t: np.ndarray, arith: list, shape):
    """Arithmetic shares of the selected slot: o (slots, n, K) public bits, t (n,) public slot."""
    return _shares_of(tabs, _b2a_accs(rt, tabs, layout, o, t, arith), shape, rt.rank)


# -- difference form: one candidate plus k * (T[a + 1] - T[a]) --------------------------------
def _tz(v: int) -> int:
    return (v & -v).bit_length() - 1


def diff_planes(tabs, hb: int) -> list[tuple[int, int, np.ndarray]] | None:
    """[(table, v, indicator)]: DT[j] = T[j + 1 mod 2^hb] - T[j] mod 2^M as
    sum_v v [DT[j] = v] over its distinct nonzero values v (table order, then v); None
    if there are so many values that the difference form cannot deal fewer bits (each
    plane costs at least 2 bits: smooth tables such as rsqrt)."""
    steps = []
    for t, _, _, M in tabs:
        d = (np.roll(t, -1) - t).view(U64) & U64((1 << M) - 1 if M < 64 else 2**64 - 1)
        steps.append((d, [int(v) for v in np.unique(d) if v]))
    if 2 * sum(len(vs) for _, vs in steps) > _onehot_bits(hb) + _value_bits(tabs):
        return None
    return [(i, v, (d == v).astype(np.int64)) for i, (d, vs) in enumerate(steps) for v in vs]


def diff_layout(tabs, planes) -> list[tuple[int, int, int]]:
    """Arithmetic columns of the difference form, as (kind, plane or table, ring width):
    per plane p of value v in table i, <beta_p> and <u beta_p> over Z_2^(M_i - tz(v)) (kinds
    0, 1); per table with planes, <u> over Z_2^(M_i) (kind 2)."""
    cols = []
    for p, (i, v, _) in enumerate(planes):
        w = tabs[i][3] - _tz(v)
        cols += [(0, p, w), (1, p, w)]
    return cols + [(2, i, tabs[i][3]) for i in sorted({i for i, _, _ in planes})]


def _onehot_bits(hb: int) -> int:
    return 64 * -(-(1 << hb) // 64)


def _value_bits(tabs) -> int:
    return sum(w for *_, w in _bit_layout(tabs))


def _use_diff(tabs, hb: int, planes) -> bool:
    """The difference form when its dealt bits per element are no more than the pair's:
    2^hb + sum (M - j) + diff columns against 2 (2^hb + sum (M - j))."""
    if planes is None:
        return False
    cols = sum(w for *_, w in diff_layout(tabs, planes))
    return cols <= _onehot_bits(hb) + _value_bits(tabs)


def difference_form(tabs, hb: int):
    """The planes of the difference form if the requant uses it, else None (the
    two-candidate form); the one rule for ``requant`` and ``cost_requant``."""
    planes = diff_planes(tabs, hb)
    return planes if _use_diff(tabs, hb, planes) else None


@dataclass(frozen=True, eq=False)
class TableForm:
    """What a lookup derives from its public tables alone (``table_form``)."""

    tabs: list  # [(T int64, m, signed, M)] (``_check_tables``)
    layout: list  # arithmetic columns of the output bits (``_bit_layout``)
    planes: list | None  # requant: the difference form's planes, None: two candidates
    dlayout: list  # the difference form's extra columns ([] without it)
    bits: np.ndarray  # packed bit planes dotted with the one-hot: outputs (+ indicators)


_FORMS: dict = {}


def _tables_key(tables, hb: int, requant: bool) -> tuple:
    key: list = [hb, requant]
    for item in tables:
        t, d = np.ascontiguousarray(item[0]), item[1]
        digest = hashlib.blake2b(t.view(np.uint8), digest_size=16).digest()
        m = int(item[2]) if len(item) > 2 else None
        key.append((t.dtype.str, t.shape, digest, d.k if isinstance(d, Ring) else int(d), m))
    return tuple(key)


def table_form(tables, hb: int, requant: bool = False) -> TableForm:
    """The checked tables, their layout, the requant's form and packed bit planes, derived
    once per process for each table set (the model calls the same few sets every layer:
    numpy work per call that P0, P1 and P2 would all repeat)."""
    key = _tables_key(tables, hb, requant)
    form = _FORMS.get(key)
    if form is None:
        tabs = _check_tables(tables, hb)
        planes = difference_form(tabs, hb) if requant else None
        extra = [(ind, 1, False, 64) for _, _, ind in planes or []]
        form = TableForm(
            tabs,
            _bit_layout(tabs),
            planes,
            diff_layout(tabs, planes) if planes is not None else [],
            table_planes(tabs + extra, hb),
        )
        if len(_FORMS) >= 256:
            _FORMS.clear()
        _FORMS[key] = form
    return form


def _diff_bits(u: np.ndarray, beta: np.ndarray, dlayout) -> np.ndarray:
    """P0: (1, n, columns) bits of the difference form's arithmetic columns."""
    cols = [beta[:, j] if k == 0 else u & beta[:, j] if k == 1 else u for k, j, _ in dlayout]
    return np.stack(cols, axis=1)[None] if cols else np.zeros((1, u.size, 0), np.uint8)


@njit(cache=True, nogil=True, boundscheck=False)
def _diff_kernel(t, D, sh, kind, idx, ptab, coef, public, accs):  # pragma: no cover - numba
    """accs[i, table] += v_p arith(k_i d_ip) with k = t xor u, d_p = D_p xor beta_p, from
    the shares sh[0, i, c] of column c (``diff_layout``): t (1 - 2 D) <beta> (kind 0),
    (1 - 2 t)(1 - 2 D) <u beta> (kind 1), (1 - 2 t) D <u> summed over a table's planes
    (kind 2), plus the public t D v (``public``, P1 once). Branch-free in the public bits
    (signs as multiplications mod 2^64): t and D are random. Per element the planes'
    sum_p D_p v_p per table is formed once; runs of one table's columns sum in a
    register."""
    n, P, C, T = t.shape[0], coef.shape[0], kind.shape[0], accs.shape[1]
    one, two = np.uint64(1), np.uint64(2)
    sums = np.zeros(T, dtype=np.uint64)
    for i in range(n):
        ti = np.uint64(t[i])
        acc = accs[i]
        sums[:] = 0
        for p in range(P):
            sums[ptab[p]] += np.uint64(D[i, p]) * coef[p]
        run, cur = np.uint64(0), -1
        for c in range(C):
            x = np.uint64(sh[0, i, c])
            if kind[c] == 2:
                tab = idx[c]
                v = x * sums[tab] * (one - two * ti)
            else:
                p = idx[c]
                tab, d = ptab[p], np.uint64(D[i, p])
                if kind[c] == 0:
                    v = ti * x * coef[p] * (one - two * d)
                else:
                    v = x * coef[p] * (one - two * (ti ^ d))
            if tab != cur:
                if cur >= 0:
                    acc[cur] += run
                run, cur = np.uint64(0), tab
            run += v
        if cur >= 0:
            acc[cur] += run
        if public:
            for tb in range(T):
                acc[tb] += ti * sums[tb]


def diff_outputs(rt, tabs, layout, planes, dlayout, o, D, t, arith, darith, shape):
    """Shares of T[a] + k DT[a]: o (n, K) the opened bits of T[a], D (n, planes) of the
    indicators, t (n,) = k xor u."""
    n = t.size
    accs = _b2a_accs(rt, tabs, layout, np.ascontiguousarray(o)[None], np.zeros(n, U64), arith)
    t, D = t.astype(np.uint8), np.ascontiguousarray(D)
    ptab = np.array([i for i, _, _ in planes], dtype=np.int64)
    coef = np.array([v for _, v, _ in planes], dtype=U64)
    for g, (cols, sh) in enumerate(darith):
        kind = np.array([dlayout[c][0] for c in cols], dtype=np.int64)
        idx = np.array([dlayout[c][1] for c in cols], dtype=np.int64)
        _diff_kernel(t, D, sh, kind, idx, ptab, coef, rt.rank == 1 and g == 0, accs)
    return _shares_of(tabs, accs, shape, rt.rank)


MAX_HB = 12  # one-hot of 2^13 bits (1 KiB) per element at most


def _check_acc(acc, c: int) -> int:
    if not isinstance(acc, Shared) or not isinstance(acc.dom, Ring):
        raise DomainMismatch(f"requant input must be a share over a ring, got {acc!r}")
    B = acc.dom.k
    if not 1 <= c < B:
        raise ValueError(f"shift c={c} must be in 1..{B - 1} for Z2^{B}")
    if B - c > MAX_HB:
        raise ValueError(f"requant index of {B - c} bits exceeds the one-hot limit {MAX_HB}")
    return B


# -- exact requant --------------------------------------------------------------------------
def requant(
    rt, acc: Shared, c: int, tables, *, carry_digits=None, max_index_bits=MULTI_INDEX_BITS
) -> list[Shared]:
    """Shares over Z_2^M of T[floor(acc / 2^c) mod 2^(B-c)] for each (T, M) in ``tables``
    (T of length 2^(B-c); M a ring or a width). Reference: ``reference_requant``; cost:
    ``cost_requant``."""
    _check_acc(acc, c)
    gen = requant_steps(
        rt, acc, c, tables, carry_digits=carry_digits, max_index_bits=max_index_bits
    )
    return run(rt, gen)[0]


def requant_steps(
    rt, acc: Shared, c: int, tables, *, carry_digits=None, max_index_bits=MULTI_INDEX_BITS
):
    """Step form of ``requant`` (``protocols.steps``)."""
    B = _check_acc(acc, c)
    hb, shape, n = B - c, acc.shape, acc.size
    f = table_form(tables, hb, requant=True)
    tabs, layout, planes, dlayout = f.tabs, f.layout, f.planes, f.dlayout
    diff = planes is not None
    K, Kd = len(layout), len(planes) if diff else 0
    plan = C.carry_plan(c, carry_digits, max_index_bits)
    r = rt.random_shared(ring(B), shape)
    rf = r.reshape(-1) if rt.is_dealer else None
    priv = PRG(fresh_seed(), "p0-private") if rt.is_dealer else None
    u = priv.bits((n,)) if priv else None
    ckey = C.deal_carry(rt, rf, c, plan, u, n)
    if rt.is_dealer:
        pos = (np.zeros(n, U64), rf >> U64(c)) if diff else (u, rf >> U64(c))
    e = deal_onehot(rt, n, hb, pos if rt.is_dealer else None, 1 if diff else 2)
    s = rt.random_bits((1, n, K + Kd) if diff else (2, n, K))
    arith = deal_b2a(rt, s[:, :, :K], n, layout, slots=s.shape[0])
    if diff:
        bits = _diff_bits(u.astype(np.uint8), s[0, :, K:], dlayout) if rt.is_dealer else None
        darith = deal_b2a(rt, bits, n, dlayout, slots=1)
    if rt.is_dealer:
        return [Shared.phantom(ring(M), shape) for *_, M in tabs]

    mine = acc - r
    (do,) = yield [(mine.dom, mine.data)]
    delta = mine.dom.add(mine.data, do).reshape(-1)
    dh, dl = delta >> U64(c), delta & U64((1 << c) - 1)
    tsh = yield from C.carry_steps(ckey, dl)
    if diff:  # T[a] and the indicators of DT[a], a = dh + r_h: one rotation of one vector
        z = dot_bits(e, dh, f.bits, hb) ^ s[0]
    else:
        z = slot_bits(e, dh, f.bits, hb) ^ s
    to, zo = yield [(BOOL, tsh), (BOOL, z)]
    t = tsh ^ to
    o = z ^ zo
    if diff:
        return diff_outputs(
            rt, tabs, layout, planes, dlayout, *np.hsplit(o, [K]), t, arith, darith, shape
        )
    return b2a_outputs(rt, tabs, layout, o, t, arith, shape)


def reference_requant(acc, B: int, c: int, tables) -> list[np.ndarray]:
    """Plaintext: T[floor(acc / 2^c) mod 2^(B-c)] reduced into each table's ring."""
    tabs = _check_tables(tables, B - c)
    return C.reference_requant(acc, B, c, [(t, ring(M)) for t, _, _, M in tabs], exact=True)


def _specs(tables) -> list[tuple[int, int]]:
    """(M, m) of each (T or m, ring or M[, m]) item."""
    return [
        (
            it[1] if isinstance(it[1], int) else it[1].k,
            it[2] if len(it) > 2 else it[0] if isinstance(it[0], int) else table_bits(it[0])[0],
        )
        for it in tables
    ]


def cost_requant(
    shape, B: int, c: int, tables, *, carry_digits=None, max_index_bits=MULTI_INDEX_BITS
) -> Cost:
    """Online B + (2 per digit if several) + 1 + (2 sum m, or sum m + P in the difference
    form with P planes) bits per party; offline carry tables + 2^(hb+1) bits (2^hb in the
    difference form; whole words) + the arithmetic columns; 2 or 3 rounds. ``tables`` as
    for ``requant`` (the form depends on the entries)."""
    n, hb = int(np.prod(shape, dtype=np.int64)), B - c
    f = table_form(tables, hb, requant=True)
    layout, planes = f.layout, f.planes
    diff = planes is not None
    plan = C.carry_plan(c, carry_digits, max_index_bits)
    slots, K = (1, len(layout) + len(planes)) if diff else (2, 2 * len(layout))
    cc = C.cost_carry(n, c, plan)
    on = msg(ring(B), n) + cc.online[0] + msg(BOOL, n) + msg(BOOL, n * K)
    off = cc.offline[1] + msg(WORD, n * slots * -(-(1 << hb) // 64))
    cols = [(layout, slots)] + ([(f.dlayout, 1)] if diff else [])
    off += sum(_b2a_bytes(n, lay, sl) for lay, sl in cols)
    return Cost((on, on), (0, off), 2 + cc.rounds)


# -- one-hot LUT ------------------------------------------------------------------------------
def lut(rt, x: Shared, tables, bits: int | None = None) -> list[Shared]:
    """Shares over Z_2^M of T[x mod 2^b] for each (T, M) in ``tables`` (T of length 2^b,
    b = ``bits`` or x's width). Offline 2^b bits (whole words) + sum_j (M - j) bits; online
    b + sum m bits per party; 2 rounds (open x - r, then y xor s). Cost: ``cost_lut``."""
    if not isinstance(x, Shared) or not isinstance(x.dom, Ring):
        raise DomainMismatch(f"LUT input must be a share over a ring, got {x!r}")
    b = x.dom.k if bits is None else int(bits)
    if not 1 <= b <= min(x.dom.k, MAX_HB):
        raise ValueError(f"index of {b} bits from {x.dom!r} (one-hot limit {MAX_HB})")
    f = table_form(tables, b)
    tabs, layout = f.tabs, f.layout
    shape, n = x.shape, x.size
    r = rt.random_shared(ring(b), shape)
    e = deal_onehot(rt, n, b, (np.zeros(n, U64), r.reshape(-1)) if rt.is_dealer else None, 1)
    s = rt.random_bits((1, n, len(layout)))
    arith = deal_b2a(rt, s, n, layout, slots=1)
    if rt.is_dealer:
        return [Shared.phantom(ring(M), shape) for *_, M in tabs]
    delta = C._open(rt, x.reduce(b) - r).reshape(-1)
    z = dot_bits(e, delta, f.bits, b) ^ s[0]
    (zo,) = rt.exchange([(BOOL, z)], np.uint8)
    o = (z ^ zo)[None]
    return b2a_outputs(rt, tabs, layout, o, np.zeros(n, dtype=U64), arith, shape)


def reference_lut(x, b: int, tables) -> list[np.ndarray]:
    """Plaintext: T[x mod 2^b] reduced into each table's ring."""
    tabs = _check_tables(tables, b)
    idx = (np.asarray(x, dtype=U64) & U64((1 << b) - 1)).astype(np.intp)
    return [ring(M).reduce(t[idx]) for t, _, _, M in tabs]


def cost_lut(shape, b: int, tables) -> Cost:
    """``tables`` items are (T or its width m, M[, m])."""
    n = int(np.prod(shape, dtype=np.int64))
    layout = [(0, j, M - j) for M, m in _specs(tables) for j in range(m)]
    on = msg(ring(b), n) + msg(BOOL, n * len(layout))
    off = msg(WORD, n * -(-(1 << b) // 64))
    off += _b2a_bytes(n, layout, 1)
    return Cost((on, on), (0, off), 2)
