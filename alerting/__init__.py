"""Alerting: who is told what, over which channel, and getting it there.

Pure (no I/O, time passed in): ``model`` (triggers, incident snapshot, messages), ``routing``
(the SLA's "Who is called"), ``escalation`` (one step at a time), ``rotation`` (who is on
call), ``messages`` (SMS / voice / e-mail text). With I/O: ``channels`` (one module per
transport), ``outbox`` (the sender's view of the outbox) and ``sender`` (claim, send, retry,
fall back).
"""
