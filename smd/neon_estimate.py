"""llvm-mca estimates of bmxnet's NEON inner loops on the Raspberry Pi 4 and 5 cores.

No ARM machine is needed: the NEON kernels (src/operator/kernels/binary_neon.cc) are
compiled for aarch64 with the library's flags, the hot loop of each is cut out of the
assembly, and llvm-mca simulates it on a core's scheduling model. Binary multiply-adds per
cycle are set against a loop of independent float FMLAs (the float multiply-add peak) on the
same model; the activation packing loop is given in floats packed per cycle. These are
estimates of the steady state of one loop on one core, with the data in L1; a Pi gets real
numbers from `bmxnet-bench`.

    python -m smd.neon_estimate [--json estimates.json]

Needs aarch64-linux-gnu-g++ (or g++ on an aarch64 machine) and llvm-mca (Debian: llvm; a
newer llvm-mca-NN is preferred). LLVM models Cortex-A72 with its Cortex-A57 model and has no
Cortex-A76 model of its own (up to LLVM 19 -mcpu=cortex-a76 also gets the A57 one), so the
Pi 5 row uses Neoverse N1, the server core built on the Cortex-A76 design.
"""
import argparse
import glob
import json
import os
import platform
import re
import shutil
import subprocess
import sys
import tempfile

SOURCE = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                      "src", "operator", "kernels", "binary_neon.cc")
FLAGS = ["-O3", "-DNDEBUG", "-std=gnu++17", "-ffp-contract=off"]  # as CMakeLists.txt builds it

# (row name, symbol fragment of the kernel, the instruction that marks its hot loop, work per
# loop iteration, unit of work: binary multiply-adds or floats packed)
LOOPS = [
    ("conv tile, inside the image (4 filters x 8 pixels x 64 bits)", "CountFiltersILi4ELb0E", "cnt", 4 * 8 * 64, "bMAC"),
    ("conv tile, zero-padding border (lane masks)", "CountFiltersILi4ELb1E", "cnt", 4 * 8 * 64, "bMAC"),
    ("dense xor-popcount (2 words)", "XorPopcount", "cnt", 2 * 64, "bMAC"),
    ("activation packing, sign (4 pixels of a channel)", "PackFourPixelsILb0E", "fcm", 4, "float"),
    ("activation packing, BatchNorm thresholds", "PackFourPixelsILb1E", "fcm", 4, "float"),
]
CORES = [("Cortex-A72 (Raspberry Pi 4)", "cortex-a72"), ("Cortex-A76 (Raspberry Pi 5; model: Neoverse N1)", "neoverse-n1")]

# 16 independent accumulators: the FMA pipes' throughput, not a latency chain.
FLOAT_PEAK_LOOP = "\n".join("fmla v%d.4s, v%d.4s, v%d.4s" % (i, 16 + i % 8, 24 + i % 8) for i in range(16))
FLOAT_PEAK_MACS = 16 * 4

LABEL = re.compile(r"^(\.L\w+):")
CONDITIONS = "eq|ne|cs|hs|cc|lo|mi|pl|vs|vc|hi|ls|ge|lt|gt|le|al"
BRANCH = re.compile(r"^\s+(?:b|b\.?(?:%s)|cbn?z|tbn?z)\s+(?:[^,]+,\s*)*(\.L\w+)\s*$" % CONDITIONS)


def find_tool(names):
    for name in names:
        path = shutil.which(name)
        if path:
            return path
    return None


def llvm_mca_path():
    versioned = sorted(glob.glob("/usr/bin/llvm-mca-*"), key=lambda p: int(re.sub(r"\D", "", p) or 0))
    return find_tool([os.path.basename(p) for p in reversed(versioned)] + ["llvm-mca"])


def compiler_path():
    native = platform.machine() == "aarch64"
    return find_tool(["g++"] if native else ["aarch64-linux-gnu-g++"])


def function_body(assembly, fragment):
    """Lines of the first function whose symbol contains `fragment`."""
    lines = assembly.splitlines()
    for i, line in enumerate(lines):
        if line.endswith(":") and not line.startswith((".", "\t", " ")) and fragment in line:
            symbol = line[:-1]
            end = next((j for j in range(i + 1, len(lines)) if lines[j].strip().startswith(".size\t" + symbol)),
                       len(lines))
            return lines[i + 1:end]
    raise LookupError("no function matching %r in the assembly" % fragment)


def hot_loop(body, marker):
    """Instructions of the kernel's hot loop: of the innermost loops (a backward branch to a
    label, no other such span inside), the one with the most `marker` instructions; labels
    and directives dropped, as llvm-mca wants straight-line code. (Rotated loops can put an
    outer loop's span beside its inner loop, so "innermost" alone does not find it.)"""
    labels = {}
    loops = []
    for i, line in enumerate(body):
        label = LABEL.match(line)
        if label:
            labels[label.group(1)] = i
        branch = BRANCH.match(line)
        if branch and branch.group(1) in labels:
            loops.append((labels[branch.group(1)], i))
    inner = [(s, e) for s, e in loops if not any(s <= s2 and e2 <= e and (s2, e2) != (s, e) for s2, e2 in loops)]
    bodies = [[line.strip() for line in body[s + 1:e + 1]
               if line.strip() and not line.strip().startswith(".") and not LABEL.match(line)] for s, e in inner]
    marked = [(sum(line.startswith(marker) for line in b), len(b), b) for b in bodies]
    if not marked or max(marked)[0] == 0:
        raise LookupError("no loop with %s found" % marker)
    return max(marked)[2]


def cycles_per_iteration(mca, cpu, instructions, iterations=500):
    """llvm-mca's simulated cycles per loop iteration on `cpu`."""
    with tempfile.NamedTemporaryFile("w", suffix=".s") as f:
        f.write("\n".join(instructions) + "\n")
        f.flush()
        out = subprocess.run([mca, "-mtriple=aarch64", "-mcpu=" + cpu, "-iterations=%d" % iterations, f.name],
                             capture_output=True, text=True, check=True).stdout
    total = re.search(r"Total Cycles:\s+(\d+)", out)
    if total is None:
        raise RuntimeError("llvm-mca printed no cycle count for " + cpu)
    return int(total.group(1)) / iterations


def estimate(compiler, mca):
    assembly = subprocess.run([compiler] + FLAGS + ["-I", os.path.dirname(os.path.dirname(SOURCE)), "-S", "-o", "-",
                                                    SOURCE], capture_output=True, text=True, check=True).stdout
    rows = []
    for core, cpu in CORES:
        peak = FLOAT_PEAK_MACS / cycles_per_iteration(mca, cpu, FLOAT_PEAK_LOOP.splitlines())
        for name, fragment, marker, work, unit in LOOPS:
            loop = hot_loop(function_body(assembly, fragment), marker)
            cycles = cycles_per_iteration(mca, cpu, loop)
            row = {"core": core, "mcpu": cpu, "loop": name, "instructions": len(loop),
                   "cycles_per_iteration": round(cycles, 2), "unit": unit, "per_cycle": round(work / cycles, 1)}
            if unit == "bMAC":
                row.update(float_fma_macs_per_cycle=round(peak, 1), ratio=round(work / cycles / peak, 1))
            rows.append(row)
    return rows


def print_table(rows):
    print("%-50s %-62s %6s %9s %14s %6s" % ("core", "loop", "instr", "cycles/it", "per cycle", "xFMA"))
    for r in rows:
        ratio = "%5.1fx" % r["ratio"] if "ratio" in r else ""
        print("%-50s %-62s %6d %9.2f %8.1f %-5s %6s" % (r["core"], r["loop"], r["instructions"],
                                                        r["cycles_per_iteration"], r["per_cycle"], r["unit"], ratio))
    print("float FMA peak (independent FMLAs), MACs per cycle: " + ", ".join(
        "%s %.1f" % (core, next(r["float_fma_macs_per_cycle"] for r in rows if r["core"] == core and "ratio" in r))
        for core, _ in CORES))


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--json", help="also write the rows here")
    args = p.parse_args(argv)
    compiler, mca = compiler_path(), llvm_mca_path()
    if compiler is None or mca is None:
        sys.exit("neon_estimate: needs %s and llvm-mca (Debian: apt-get install %s llvm)" %
                 (("g++", "g++") if platform.machine() == "aarch64" else ("aarch64-linux-gnu-g++",
                                                                       "g++-aarch64-linux-gnu")))
    rows = estimate(compiler, mca)
    print_table(rows)
    version = re.search(r"LLVM version [\d.]+", subprocess.run([mca, "--version"], capture_output=True,
                                                                text=True).stdout)
    print("(%s, %s; estimates, not measurements)" % (os.path.basename(mca), version.group(0) if version else "?"))
    if args.json:
        from bmxnet.fileio import atomic_write
        text = json.dumps(rows, indent=1) + "\n"
        atomic_write(args.json, lambda temp: open(temp, "w").write(text))


if __name__ == "__main__":
    main()
