"""Declared cost of a protocol: what each computing party sends online, what the helper
sends each of them offline, and the number of sequential online rounds.

Costs are in bytes *as packed on the wire*: one message of n elements of a b-bit domain
is ``ceil(n*b/8)`` bytes (see ``msg``), so a declared cost can be compared exactly with
the bytes the runtime measured. ``a + b`` runs b after a (rounds add); ``a | b`` runs them
side by side in the same rounds (rounds take the max).
"""

from __future__ import annotations

from dataclasses import dataclass, field


def msg(dom, n: int) -> int:
    """Bytes of one packed array of ``n`` elements of ``dom``."""
    return dom.nbytes(int(n))


@dataclass(frozen=True)
class Cost:
    online: tuple[int, int] = (0, 0)  # payload bytes sent by (P1, P2)
    offline: tuple[int, int] = (0, 0)  # payload bytes the helper sends to (P1, P2)
    rounds: int = 0
    extra: dict = field(default_factory=dict, compare=False)

    @staticmethod
    def symmetric(online: int = 0, rounds: int = 0, offline_p2: int = 0, offline_p1: int = 0):
        return Cost((online, online), (offline_p1, offline_p2), rounds)

    def _add(self, o: Cost, rounds: int) -> Cost:
        return Cost(
            (self.online[0] + o.online[0], self.online[1] + o.online[1]),
            (self.offline[0] + o.offline[0], self.offline[1] + o.offline[1]),
            rounds,
        )

    def __add__(self, o: Cost) -> Cost:
        return self._add(o, self.rounds + o.rounds)

    def __or__(self, o: Cost) -> Cost:
        return self._add(o, max(self.rounds, o.rounds))

    def times(self, n: int) -> Cost:
        """n sequential repetitions."""
        out = Cost()
        for _ in range(n):
            out = out + self
        return out

    @property
    def online_bits(self) -> tuple[int, int]:
        return (8 * self.online[0], 8 * self.online[1])

    def as_dict(self) -> dict:
        return {
            "online_bytes_p1": self.online[0],
            "online_bytes_p2": self.online[1],
            "offline_bytes_p1": self.offline[0],
            "offline_bytes_p2": self.offline[1],
            "rounds": self.rounds,
        }
