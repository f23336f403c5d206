#!/usr/bin/env python3
# Cuts a mounted filesystem the way a power loss does (SECURITY.md row 18): FS_IOC_SHUTDOWN with
# FS_SHUTDOWN_FLAG_NOLOGFLUSH, so whatever the journal has not committed is lost and every later
# I/O fails. Node has no ioctl(2), hence this helper.
# Usage: fs-shutdown.py MOUNTPOINT. It opens the mount point, prints "ready", waits for one line on
# stdin, cuts, prints "cut" and exits: the cut lands within a millisecond of the test's decision.
import fcntl
import os
import struct
import sys

FS_IOC_SHUTDOWN = 0x8004587D  # _IOR('X', 125, __u32)
FS_SHUTDOWN_FLAG_NOLOGFLUSH = 2

fd = os.open(sys.argv[1], os.O_RDONLY)
print("ready", flush=True)
sys.stdin.readline()
fcntl.ioctl(fd, FS_IOC_SHUTDOWN, struct.pack("I", FS_SHUTDOWN_FLAG_NOLOGFLUSH))
os.close(fd)
print("cut", flush=True)
