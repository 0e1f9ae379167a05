"""Benchmarks on an emulated home: shaped links and throttled CPUs on one machine.

emulation   `Home`: one network namespace per device on a shaped bridge (tc tbf), and a
            cgroup v1 CPU quota per device's compute thread; degrades to loopback + sleep
transport   our TCP ring against torch.distributed gloo on the same shaped links
"""
