"""Stand-ins for the outside world that ctiwatch alerts through, part of the product.

``make run`` and the tests send every SMS and call to :class:`FakeTwilio` and every mail to
:class:`FakeSmtp`; :func:`add_fake_views` shows them as "the fake phone" and "the mailbox".
"""

from ctiwatch.fakes.smtp import FakeSmtp, ReceivedMail
from ctiwatch.fakes.twilio import FakeCall, FakeMessage, FakeTwilio, WebhookResult, sign
from ctiwatch.fakes.views import add_fake_views

__all__ = [
    "FakeCall",
    "FakeMessage",
    "FakeSmtp",
    "FakeTwilio",
    "ReceivedMail",
    "WebhookResult",
    "add_fake_views",
    "sign",
]
