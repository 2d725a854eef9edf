"""Arithmetic coding: integer frequencies in, bits out, and back.

Witten, Neal & Cleary (1987), with 32-bit integers. Coding a symbol that owns
``[start, end)`` of ``total`` costs about ``log2(total / (end - start))`` bits, and
a whole message comes within two bits of the sum. ``llmcore.compress`` feeds it
the model's next-token frequencies; here the symbols are just integer ranges.

The coder keeps an interval [low, high] of 32-bit integers. Coding a symbol that
owns [start, end) of `total` shrinks the interval to that share of itself. Whenever
the interval lies wholly in the lower or upper half, its first bit is decided: emit
it and double the interval. When it straddles the middle in [1/4, 3/4), the next bit
is not yet decided (it is the "carry" problem): count it as pending, double the
middle, and emit the pending bits, inverted, after the next decided bit.
"""

from __future__ import annotations

import numpy as np

from llmcore.errors import UserError

PRECISION = 32
FULL = (1 << PRECISION) - 1
HALF = 1 << (PRECISION - 1)
QUARTER = 1 << (PRECISION - 2)


class ArithmeticEncoder:
    """Symbols (as [start, end) of total) in, bits out.

    >>> enc = ArithmeticEncoder()
    >>> enc.encode(0, 1, 4)   # a symbol with probability 1/4: costs 2 bits
    >>> enc.encode(2, 4, 4)   # probability 1/2: 1 bit
    >>> len(enc.finish())     # 3 bits + 2 to finish, in one byte
    1
    """

    def __init__(self):
        self.low, self.high = 0, FULL
        self.pending = 0  # undecided bits, each the opposite of the next decided bit
        self.bits: list[int] = []

    def encode(self, start: int, end: int, total: int) -> None:
        span = self.high - self.low + 1  # the rounding below needs total <= QUARTER < span
        self.high = self.low + span * end // total - 1
        self.low = self.low + span * start // total
        while True:
            if self.high < HALF:  # wholly in the lower half: the next bit is 0
                self._emit(0)
            elif self.low >= HALF:  # wholly in the upper half: 1
                self._emit(1)
                self.low -= HALF
                self.high -= HALF
            elif self.low >= QUARTER and self.high < 3 * QUARTER:  # straddles the middle
                self.pending += 1
                self.low -= QUARTER
                self.high -= QUARTER
            else:
                break
            self.low = 2 * self.low  # double the interval: one more bit of precision
            self.high = 2 * self.high + 1

    def _emit(self, bit: int) -> None:
        self.bits.append(bit)
        self.bits.extend([1 - bit] * self.pending)
        self.pending = 0

    def finish(self) -> bytes:
        """Two more bits pick a point inside [low, high] whatever follows them."""
        self.pending += 1
        self._emit(0 if self.low < QUARTER else 1)
        return np.packbits(np.array(self.bits, dtype=np.uint8)).tobytes()  # zero-padded to a byte


class ArithmeticDecoder:
    """Bits in, symbols out: the encoder's steps, replayed with the code as a guide."""

    def __init__(self, code: bytes):
        self.bits = np.unpackbits(np.frombuffer(code, dtype=np.uint8)).tolist()
        # The encoder wrote every shift's bit plus 2; the decoder reads 32 before its
        # first shift, so a file it reads more than 32 bits beyond the end of is corrupt.
        self.limit = len(self.bits) + PRECISION
        self.pos = 0
        self.low, self.high = 0, FULL
        self.value = 0  # the code's next 32 bits: a point inside [low, high]
        for _ in range(PRECISION):
            self.value = 2 * self.value + self._bit()

    def _bit(self) -> int:
        pos = self.pos
        self.pos += 1
        if pos < len(self.bits):
            return self.bits[pos]
        if pos >= self.limit:
            raise UserError("the compressed file is corrupt or truncated: its code ran out")
        return 0

    def target(self, total: int) -> int:
        """Where the code's point falls, in units of `total`: the symbol owning it is next."""
        span = self.high - self.low + 1
        return ((self.value - self.low + 1) * total - 1) // span

    def consume(self, start: int, end: int, total: int) -> None:
        span = self.high - self.low + 1
        self.high = self.low + span * end // total - 1
        self.low = self.low + span * start // total
        while True:
            if self.high < HALF:
                pass
            elif self.low >= HALF:
                self.low -= HALF
                self.high -= HALF
                self.value -= HALF
            elif self.low >= QUARTER and self.high < 3 * QUARTER:
                self.low -= QUARTER
                self.high -= QUARTER
                self.value -= QUARTER
            else:
                break
            self.low = 2 * self.low
            self.high = 2 * self.high + 1
            self.value = 2 * self.value + self._bit()
