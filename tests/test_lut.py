"""The local model's table lookups (engines/local/lut.py): exact, and a look's pair tables kept."""

from __future__ import annotations

import numpy as np
import pytest

from decart_nb.engines.local import compile_look
from decart_nb.engines.local.lut import _pairs_of, lut
from decart_nb.engines.local.styles import STYLES
from decart_nb.engines.local.tables import look_tables

RNG = np.random.default_rng(7)


@pytest.mark.parametrize("shape", [(720, 1280), (360, 640), (7, 13), (1, 2)])
def test_a_lookup_equals_indexing_the_table(shape: tuple[int, int]) -> None:
    table = RNG.integers(0, 256, 256, np.uint8)
    src = RNG.integers(0, 256, shape, np.uint8)
    out = np.empty(shape, np.uint8)
    assert np.array_equal(lut(table, src, out), table[src])
    padded = np.zeros((shape[0], shape[1] + 3), np.uint8)[:, : shape[1]]  # rows with a stride
    padded[:] = src
    assert np.array_equal(lut(table, padded, np.empty(shape, np.uint8)), table[src])


def test_a_read_only_tables_pair_table_is_kept_and_a_writable_ones_is_not() -> None:
    table = RNG.integers(0, 256, 256, np.uint8)
    src = RNG.integers(0, 256, (720, 1280), np.uint8)
    first = _pairs_of(table)
    table[src[0, 0]] ^= 0xFF  # a writable table may change between calls: it is read each time
    assert _pairs_of(table) is not first
    assert np.array_equal(lut(table, src, np.empty_like(src)), table[src])
    table.setflags(write=False)
    assert _pairs_of(table) is _pairs_of(table)


def test_a_looks_tables_are_read_only() -> None:
    for style in STYLES:
        tables = look_tables(compile_look(style.name, False))
        for name, table in vars(tables).items():
            assert table is None or not table.flags.writeable, (style.name, name)
