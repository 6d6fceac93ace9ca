"""The shared polling helpers: they return the first passing answer, and fail naming what and the last answer."""

from __future__ import annotations

import itertools

import pytest

from tests.polling import eventually, eventually_sync


async def test_eventually_awaits_async_probes_and_calls_sync_ones() -> None:
    counter = itertools.count()

    async def probe() -> int | None:
        n = next(counter)
        return n if n >= 3 else None

    assert await eventually(probe, within=5, interval=0.001, what="three") == 3
    assert await eventually(lambda: next(counter), until=lambda n: n % 2 == 0, within=5, interval=0.001, what="") == 4


async def test_eventually_fails_naming_what_and_the_last_answer() -> None:
    with pytest.raises(AssertionError, match=r"the flag did not happen within 0.05s; the last probe answered False"):
        await eventually(lambda: False, within=0.05, interval=0.01, what="the flag")


async def test_eventually_treats_ignored_errors_as_not_yet_and_others_as_failures() -> None:
    calls = itertools.count()

    def probe() -> str:
        if next(calls) < 2:
            raise ConnectionError("down")
        return "up"

    assert await eventually(probe, within=5, interval=0.001, what="up", ignore=(ConnectionError,)) == "up"
    with pytest.raises(ZeroDivisionError):
        await eventually(lambda: 1 / 0, within=5, what="never")


def test_eventually_sync_polls_until_the_answer_passes() -> None:
    counter = itertools.count()
    assert eventually_sync(lambda: next(counter), until=lambda n: n > 2, within=5, interval=0.001, what="") == 3
    with pytest.raises(AssertionError, match=r"ConnectionError\('down'\)"):
        eventually_sync(_down, within=0.05, interval=0.01, what="up", ignore=(ConnectionError,))


def _down() -> bool:
    raise ConnectionError("down")
