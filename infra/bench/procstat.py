"""CPU time, peak memory and machine load read from /proc, for the benchmark.

CPU time of a process tree is the sum of utime+stime+cutime+cstime over every live
process of the tree: a process that exits moves its time into its parent's cutime/cstime
once reaped, so the sum only grows and the difference of two readings is the CPU the
tree used in between, children included.
"""

import os

TICK = os.sysconf("SC_CLK_TCK")


def _stat_fields(pid):
    """The fields of /proc/<pid>/stat after the command name (field 3 onwards)."""
    with open(f"/proc/{pid}/stat") as f:
        text = f.read()
    return text[text.rindex(")") + 2 :].split()


def cpu_seconds(pid):
    """utime+stime+cutime+cstime of one process, in seconds (0 if it is gone)."""
    try:
        f = _stat_fields(pid)
    except (FileNotFoundError, ProcessLookupError, ValueError):
        return 0.0
    # after the name: state(3) ppid(4) ... utime(14) stime(15) cutime(16) cstime(17)
    return sum(int(x) for x in f[11:15]) / TICK


def parents():
    """{pid: ppid} of every process."""
    out = {}
    for name in os.listdir("/proc"):
        if name.isdigit():
            try:
                out[int(name)] = int(_stat_fields(name)[1])
            except (FileNotFoundError, ProcessLookupError, ValueError, IndexError):
                pass
    return out


def tree(root):
    """`root` and all its live descendants."""
    pp = parents()
    found, frontier = [root], [root]
    while frontier:
        nxt = [p for p, parent in pp.items() if parent in frontier]
        found.extend(nxt)
        frontier = nxt
    return found


def tree_cpu(root):
    """CPU seconds of `root`'s process tree (see the module doc)."""
    return sum(cpu_seconds(p) for p in tree(root))


def vm_hwm_bytes(pid):
    """Peak resident set size (VmHWM) of a live process, in bytes (0 if unknown)."""
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024
    except FileNotFoundError:
        pass
    return 0


def tree_vm_hwm_bytes(root):
    """The largest peak resident set size (VmHWM) of any live process of `root`'s tree
    (for PostgreSQL: the postmaster or a backend; shared buffers a backend touched
    count in its RSS)."""
    return max((vm_hwm_bytes(p) for p in tree(root)), default=0)


def machine_busy_seconds():
    """CPU seconds all cores spent not idle since boot (user+nice+system+irq+softirq+steal)."""
    with open("/proc/stat") as f:
        parts = f.readline().split()[1:]
    v = [int(x) for x in parts]
    user, nice, system, idle, iowait, irq, softirq, steal = v[:8]
    return (user + nice + system + irq + softirq + steal) / TICK


def loadavg():
    """The 1-minute load average."""
    with open("/proc/loadavg") as f:
        return float(f.read().split()[0])


class CpuMeter:
    """Reads the CPU of named process trees at start and end of a measurement."""

    def __init__(self, roots):
        self.roots = dict(roots)
        self.start = {name: tree_cpu(pid) for name, pid in self.roots.items()}
        self.busy0 = machine_busy_seconds()

    def stop(self):
        """{name: cpu seconds used since start}, and the machine's busy seconds."""
        used = {n: tree_cpu(p) - self.start[n] for n, p in self.roots.items()}
        return used, machine_busy_seconds() - self.busy0
