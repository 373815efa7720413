"""MQTT: remote probe agents, real call events and central ingestion.

Topics (``<prefix>`` is ``mqtt.topic_prefix``, ``ctiwatch/v1`` by default):

* ``<prefix>/results/<agent>``: batches of probe results from an agent (QoS 1).
* ``<prefix>/calls/<customer>``: real call events published by the CTI platform.
* ``<prefix>/agents/<agent>/status``: ``online`` / ``offline`` (retained; ``offline`` is also the
  agent's last will).

Payloads are versioned JSON, see :mod:`ctiwatch.mqtt.schema`.
"""
