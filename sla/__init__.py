"""The SLA engine: support calendar, targets, deadlines, timers and KPIs.

Pure: standard library, ``holidays`` and ``zoneinfo`` only; time always comes in as an argument.
"""
