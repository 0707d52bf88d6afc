#!/usr/bin/env python3
"""Run a command, pass its output through, then print to stderr its peak RSS (KiB) as
`MAXRSS_KB <n>` and the CPU time it used (user + system, seconds) as `CPU_S <s>`."""
import resource
import subprocess
import sys

proc = subprocess.run(sys.argv[1:])
usage = resource.getrusage(resource.RUSAGE_CHILDREN)
print(f"MAXRSS_KB {usage.ru_maxrss}", file=sys.stderr)
print(f"CPU_S {usage.ru_utime + usage.ru_stime:.3f}", file=sys.stderr)
sys.exit(proc.returncode)
