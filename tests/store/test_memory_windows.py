"""The in-process fixed-window counters behind ``rate_limit_storage = memory://``."""

from limits import parse

from corral.store.ratelimits import MemoryWindows


class Clock:
    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now


def test_a_window_admits_its_amount_then_says_how_long_to_wait() -> None:
    clock = Clock()
    windows = MemoryWindows(clock)
    item = parse("3/minute")
    assert [windows.take(item, ("k",), 1, False) for _ in range(3)] == [None, None, None]
    clock.now += 20.2
    assert windows.take(item, ("k",), 1, False) == 40  # the window began at the first hit
    clock.now += 39.7
    assert windows.take(item, ("k",), 1, False) == 1  # never 0: Retry-After is at least 1
    clock.now += 0.3
    assert windows.take(item, ("k",), 1, False) is None  # a new window


def test_keys_count_apart() -> None:
    windows = MemoryWindows(Clock())
    item = parse("1/second")
    assert windows.take(item, ("a",), 1, False) is None
    assert windows.take(item, ("b",), 1, False) is None
    assert windows.take(item, ("a",), 1, False) == 1


def test_all_or_nothing_refuses_a_cost_that_does_not_fit_and_counts_none_of_it() -> None:
    windows = MemoryWindows(Clock())
    item = parse("10/day")
    assert windows.take(item, ("rows",), 8, True) is None
    assert windows.take(item, ("rows",), 3, True) is not None
    assert windows.take(item, ("rows",), 2, True) is None  # the refused 3 were not counted
    assert windows.take(item, ("rows",), 1, True) is not None


def test_a_refused_hit_still_counts_like_limits_fixed_window() -> None:
    windows = MemoryWindows(Clock())
    item = parse("2/second")
    assert windows.take(item, ("k",), 1, False) is None
    assert windows.take(item, ("k",), 5, False) is not None
    assert windows.take(item, ("k",), 1, False) is not None


def test_ended_windows_are_swept_so_memory_follows_the_live_keys() -> None:
    clock = Clock()
    windows = MemoryWindows(clock)
    item = parse("5/second")
    for round_ in range(20):
        for n in range(1000):
            windows.take(item, (f"client-{round_}-{n}",), 1, False)
        clock.now += 1.0  # every window of this round has ended
    assert len(windows) <= 2 * 4096
    live = len(windows)
    clock.now += 1.0
    for n in range(5000):
        windows.take(item, (f"again-{n}",), 1, False)
    assert len(windows) < live + 5000  # the ended ones went when the dict had to grow
