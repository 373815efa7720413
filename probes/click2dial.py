"""Click2Dial: start a call as the test user and check that the platform took it.

The default template (``probes.template.DEFAULT_SPECS["click2dial"]``)::

    POST {base_url}/api/v1/click2dial/{customer}/{location}/{user}/calls
         {"number": "{number}", "extension": "{extension}"}
    [STATUS] == 2xx, [BODY].call_id != "", [BODY].state == any(dialing, ringing, connected)
    recognised: [BODY].contact.name == {contact}

``probes.templates.click2dial`` in the configuration replaces any part of it.
"""

from __future__ import annotations

from probes.template import probe_template

probe_click2dial = probe_template

__all__ = ["probe_click2dial"]
