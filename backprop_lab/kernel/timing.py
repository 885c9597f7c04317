"""The speed ladder: the student's matmuls, einsum and torch.matmul timed on the lesson's
shapes, in the student's kernel.
"""

import signal
import time

import torch

from .limits import _on_alarm
from .state import CallTimeout
from .wire import Speed, SpeedSpec


def _best_time(fn, a, b, device, budget, timeout, cap=None):
    """The best of as many runs of fn(a, b) as fit in `budget` seconds (at least three,
    unless one run alone takes longer), a fast first run discarded as warm-up (caches,
    allocator), and whether it is a lower bound: a run still going after `cap` seconds is
    stopped there, and `cap` is the time (the triple loop takes a second a call; that it is
    that slow is all the ladder needs). None if it fails or passes the call's time limit."""
    previous = signal.signal(signal.SIGALRM, _on_alarm)
    signal.setitimer(signal.ITIMER_REAL, min(timeout, cap) if cap else timeout)
    best, spent, runs, warm = float("inf"), 0.0, 0, False
    try:
        while runs < 3 or (spent < budget and runs < 200):
            started = time.perf_counter()
            fn(a, b)
            if device.type == "cuda":
                torch.cuda.synchronize()
            took = time.perf_counter() - started
            if not warm and took < budget / 10:
                warm = True  # the warm-up run: not timed
                continue
            best, spent, runs = min(best, took), spent + took, runs + 1
            if took > budget:
                break
        return best, False
    except CallTimeout:
        return (cap, True) if cap and cap < timeout else (None, False)
    except BaseException:
        return None, False
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def _speed(spec: SpeedSpec, rungs: list, device: torch.device, timeout: float) -> Speed:
    """Time the student's matmul rungs, einsum and torch.matmul on the lesson's shapes,
    in this kernel, one after the other, on one thread (a ranking, not peak speed, and no
    fight with the grader for cores). torch.matmul is timed before and after the rest: if
    the two differ by more than 3x the machine was too busy for the ratios to mean
    anything, and the result says so."""
    ar, ac, bc = spec.shape
    gen = torch.Generator().manual_seed(0)
    a = torch.randn(ar, ac, generator=gen).to(device)
    b = torch.randn(ac, bc, generator=gen).to(device)
    budget = spec.budget
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    cap = spec.cap
    rows = []  # (label, seconds, the student's, at least that many seconds)
    try:
        before, _ = _best_time(torch.matmul, a, b, device, budget, timeout)
        for cell, fn in rungs:
            seconds, at_least = _best_time(fn, a, b, device, budget, timeout, cap)
            rows.append((f"your {cell}", seconds, True, at_least))
        einsum, _ = _best_time(lambda x, y: torch.einsum("ik,kj->ij", x, y), a, b, device,
                               budget, timeout)  # fmt: skip
        rows.append(("einsum", einsum, False, False))
        after, _ = _best_time(torch.matmul, a, b, device, budget, timeout)
    finally:
        torch.set_num_threads(threads)
    both = [t for t in (before, after) if t]
    rows.append(("torch.matmul (@)", min(both) if both else None, False, False))
    noisy = len(both) == 2 and max(both) > 3 * min(both)
    return Speed((ar, ac, bc), tuple(rows), noisy)
