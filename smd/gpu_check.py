"""Whether this machine shows an NVIDIA GPU, before `make test-gpu` sets anything up.

    python smd/gpu_check.py            # exit 0 and the GPUs, or 1 and why not

Needs nothing but the standard library: it asks the driver (`nvidia-smi -L`), and where that
tool is missing, the driver's /proc entries.
"""
import os
import shutil
import subprocess
import sys


def visible_gpus(run=subprocess.run, which=shutil.which, proc="/proc/driver/nvidia/gpus"):
    """(names of the GPUs the driver lists, why none when the list is empty)."""
    if which("nvidia-smi"):
        try:
            result = run(["nvidia-smi", "-L"], capture_output=True, text=True, timeout=60)
        except (OSError, subprocess.SubprocessError) as error:
            return [], "nvidia-smi could not run (%s)" % error
        gpus = [line.strip() for line in result.stdout.splitlines() if line.startswith("GPU ")]
        if gpus:
            return gpus, ""
        message = (result.stderr or result.stdout).strip().splitlines()
        return [], "nvidia-smi lists no GPU" + (" (%s)" % message[0] if message else "")
    if os.path.isdir(proc) and os.listdir(proc):
        return ["GPU at PCI %s" % entry for entry in sorted(os.listdir(proc))], ""
    return [], "no NVIDIA driver (no nvidia-smi, no %s)" % proc


def main():
    gpus, why = visible_gpus()
    if not gpus:
        print("make test-gpu: no GPU visible: %s. The GPU tests need an NVIDIA GPU and its driver; "
              "on a machine without one, `make test` runs the CPU half of each of them." % why, file=sys.stderr)
        return 1
    print("\n".join(gpus))
    return 0


if __name__ == "__main__":
    sys.exit(main())
