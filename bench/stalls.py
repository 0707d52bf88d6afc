#!/usr/bin/env python3
"""How long this machine keeps a ready thread waiting: sleeps 200 us in a loop for SECONDS
(timer slack 1 ns) and prints the distribution of the overshoot, and how many overshoots
passed 1 ms and 5 ms. Run it alone (the machine's floor) and next to a benchmark (what the
benchmark's own tail shares with every other process). Linux only.
Usage: bench/stalls.py [SECONDS]     (10 by default)
Not part of the test suite."""
import ctypes
import sys
import time

PR_SET_TIMERSLACK = 29
ctypes.CDLL("libc.so.6").prctl(PR_SET_TIMERSLACK, 1, 0, 0, 0)
seconds = float(sys.argv[1]) if len(sys.argv) > 1 else 10.0
over = []
end = time.monotonic() + seconds
while time.monotonic() < end:
    t = time.monotonic_ns()
    time.sleep(0.0002)
    over.append((time.monotonic_ns() - t - 200_000) / 1000)
over.sort()
n = len(over)
q = lambda p: over[min(n - 1, int(p * n))]
print(f"{n} sleeps of 200 us, overshoot in us: p50 {q(.5):.0f}, p99 {q(.99):.0f}, "
      f"p99.9 {q(.999):.0f}, max {over[-1]:.0f}; past 1 ms: {sum(o > 1000 for o in over)}, "
      f"past 5 ms: {sum(o > 5000 for o in over)}")
