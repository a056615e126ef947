"""python -m bmxnet.launch ...: MXNet's launcher (mxnet/tools/launch.py), but with
--launcher local the scheduler listens on 127.0.0.1.

dmlc_tracker picks the address of a network interface even for local jobs; on machines
whose other addresses must not be used (or do not route to themselves) the workers then
never find the scheduler. Other launchers (ssh, mpi, ...) are passed through unchanged.
dmlc_tracker also calls Thread.isAlive, which Python 3.9 removed; it is restored here.
"""
import os
import runpy
import sys
import threading

import mxnet


def main(argv=None):
    argv = list(sys.argv[1:] if argv is None else argv)
    if not hasattr(threading.Thread, "isAlive"):
        threading.Thread.isAlive = threading.Thread.is_alive
    if "local" in argv and argv[argv.index("local") - 1] == "--launcher":
        from dmlc_tracker import tracker
        tracker.get_host_ip = lambda host_ip=None: "127.0.0.1"
    launcher = os.path.join(os.path.dirname(mxnet.__file__), "tools", "launch.py")
    sys.argv = [launcher] + argv
    runpy.run_path(launcher, run_name="__main__")


if __name__ == "__main__":
    main()
