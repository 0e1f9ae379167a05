"""`galaxy bench`: every strategy measured side by side on an emulated home (development only).

A distribution of its own (`bench/pyproject.toml`, galaxy-bench): the product (assistant,
edge_worker) never imports it; `galaxy bench` reaches it through the `galaxy.commands` entry
point. It needs root for namespaces and cgroups, and starts workers with `--development`.

emulation   `Home`: shaped links (netns.py) and CPU quotas (cgroups.py) per device; falls back
            to loopback links + sleep emulation, and says so in every table title
settings    the homes, models and strategy variants measured
runner      one setting on real worker processes; report: ratios, tables; suite: the whole run
transport   our TCP ring against torch.distributed gloo on the same shaped links
mlp_widths  MLP GFLOP/s by column share (`python -m galaxy_bench.mlp_widths`)
"""
