#!/usr/bin/env python3
# Plays systemd's part in socket activation for the tests (test/plugins/socket-activation.test.ts),
# as a `.socket` unit with Accept=no does it: bind and listen on a TCP socket (127.0.0.1, port 0)
# before the service exists, then start the service with that socket as fd 3 and
#   LISTEN_FDS=1  LISTEN_PID=<the service's own pid>  LISTEN_FDNAMES=<name>
# The service's pid is known only once it exists, so this forks, sets LISTEN_PID to the child's pid
# in the child and execs the command there (exec keeps the pid). The parent keeps its own copy of
# the socket while the service runs, as systemd does, and forwards SIGTERM/SIGINT to it.
#
#   python3 socket-activate.py INFO_FILE [--mismatch] [--unix PATH] -- command args…
# INFO_FILE receives (written whole, by rename) {"port", "inode", "launcher", "pid"}: the port
# chosen, the socket's inode (to recognise it in /proc), this process's pid and the service's pid.
# --mismatch sets LISTEN_PID to this launcher's pid instead: variables that were not meant for the
# service, which must ignore them. --unix PATH listens on a unix socket at PATH instead (port 0).

import json
import os
import signal
import socket
import sys


def main() -> int:
    args = sys.argv[1:]
    if len(args) < 3 or '--' not in args:
        print('usage: socket-activate.py INFO_FILE [--mismatch] -- command args…', file=sys.stderr)
        return 2
    split = args.index('--')
    info_file, options, command = args[0], args[1:split], args[split + 1:]
    mismatch = '--mismatch' in options
    unix = options[options.index('--unix') + 1] if '--unix' in options else None

    if unix:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.bind(unix)
    else:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(('127.0.0.1', 0))
    sock.listen(128)
    if sock.fileno() != 3:
        os.dup2(sock.fileno(), 3)
    # Python makes sockets close-on-exec; systemd's passed fds are not.
    os.set_inheritable(3, True)
    port = 0 if unix else sock.getsockname()[1]
    inode = os.fstat(3).st_ino

    launcher = os.getpid()
    child = os.fork()
    if child == 0:
        os.environ['LISTEN_FDS'] = '1'
        os.environ['LISTEN_PID'] = str(launcher if mismatch else os.getpid())
        os.environ['LISTEN_FDNAMES'] = 'http'
        try:
            os.execvp(command[0], command)
        finally:
            os._exit(127)

    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda s, _frame: os.kill(child, s))
    tmp = f'{info_file}.tmp'
    with open(tmp, 'w') as f:
        json.dump({'port': port, 'inode': inode, 'launcher': launcher, 'pid': child}, f)
    os.rename(tmp, info_file)

    while True:
        try:
            _, status = os.waitpid(child, 0)
            break
        except InterruptedError:
            continue
    if os.WIFSIGNALED(status):
        return 128 + os.WTERMSIG(status)
    return os.WEXITSTATUS(status)


if __name__ == '__main__':
    sys.exit(main())
