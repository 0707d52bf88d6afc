#!/usr/bin/env python3
"""Run a command, pass its output through, then print its peak RSS (KiB) to stderr as `MAXRSS_KB <n>`."""
import resource
import subprocess
import sys

proc = subprocess.run(sys.argv[1:])
print(f"MAXRSS_KB {resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss}", file=sys.stderr)
sys.exit(proc.returncode)
