"""CRM integration: look the caller's number up as the test user; the contact must come back.

The default template (``probes.template.DEFAULT_SPECS["crm"]``)::

    GET  {base_url}/api/v1/recognition/{customer}/{location}/{user}?number={number}
    [STATUS] == 2xx, has([BODY].contacts) == true
    recognised: [BODY].contacts[*].name contains {contact}

An answer without the expected contact is a miss (the service works, the match failed).
``probes.templates.crm`` in the configuration replaces any part of it.
"""

from __future__ import annotations

from probes.template import probe_template

probe_crm = probe_template

__all__ = ["probe_crm"]
