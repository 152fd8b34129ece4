from agent.backoff import Backoff


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_first_restart_immediate_then_doubling_to_cap():
    clk = Clock()
    b = Backoff(clock=clk)
    assert not b.in_backoff_since("k", clk.now)       # first exit: restart at once
    b.next("k", clk.now)
    assert b.get("k") == 10
    assert b.in_backoff_since("k", clk.now)            # second exit right after
    clk.now += 9.9
    assert b.in_backoff_since("k", clk.now - 9.9)
    clk.now += 0.2
    assert not b.in_backoff_since("k", clk.now - 10.1)
    delays = []
    for _ in range(8):
        b.next("k", clk.now)
        delays.append(b.get("k"))
    assert delays == [20, 40, 80, 160, 300, 300, 300, 300]


def test_reset_after_ten_quiet_minutes():
    clk = Clock()
    b = Backoff(clock=clk)
    b.next("k", clk.now)
    b.next("k", clk.now)
    assert b.get("k") == 20
    clk.now += 601
    assert not b.in_backoff_since("k", clk.now - 1)
    b.next("k", clk.now)
    assert b.get("k") == 10


def test_forget_by_prefix():
    b = Backoff()
    b.next("uid1/a", 1.0)
    b.next("uid2/a", 1.0)
    b.forget("uid1/")
    assert b.get("uid1/a") == 0 and b.get("uid2/a") == 10
