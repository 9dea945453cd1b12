"""Runs a command and prints its stdout and stderr, then 'exit=N'.

lit's internal shell has no $?; this lets a test check an exact exit status.
"""
import subprocess
import sys

r = subprocess.run(sys.argv[1:], stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
sys.stdout.buffer.write(r.stdout)
print(f"exit={r.returncode}")
