"""Benchmarks: each ``bench/bench_*.py`` has a ``main()``; ``python -m bench`` runs them all.

Results and the machine they ran on are recorded in ``docs/benchmarks.md``.
"""
