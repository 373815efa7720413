"""The fake phone and the mailbox as pages the web layer mounts (``add_fake_views``).

* ``GET  {prefix}/phone``       every SMS and call the fake Twilio received, with a reply box
                                per number (posts a signed SMS webhook) and "press 1" per call
* ``GET  {prefix}/phone.json``  the same as JSON
* ``POST {prefix}/phone/reply`` form ``from``, ``body``
* ``POST {prefix}/phone/press`` form ``call``, ``digits``
* ``GET  {prefix}/mailbox``     every mail the local SMTP server received
* ``GET  {prefix}/mailbox.json``
"""

from __future__ import annotations

import jinja2
from aiohttp import web

from ctiwatch.fakes.smtp import FakeSmtp
from ctiwatch.fakes.twilio import FakeTwilio

_PHONE = """\
<!doctype html>
<html><head><meta charset="utf-8"><title>ctiwatch fake phone</title>
<style>body{font-family:sans-serif;margin:1.5em} td,th{padding:.3em .6em;text-align:left;
vertical-align:top} tr:nth-child(even){background:#f4f4f4} .note{color:#555}</style></head>
<body>
<h1>The fake phone</h1>
<p class="note">Everything ctiwatch sent through the fake Twilio at {{ twilio_url }}.
Nothing here reaches a real phone.</p>
{% if result %}<p><strong>{{ result }}</strong></p>{% endif %}
<h2>Reply as an on-call person</h2>
<form method="post" action="{{ prefix }}/phone/reply">
  <label>From <input name="from" value="{{ numbers[0] if numbers else '' }}" list="numbers"
  required></label>
  <datalist id="numbers">{% for n in numbers %}<option value="{{ n }}">{% endfor %}</datalist>
  <label>Text <input name="body" placeholder="ACK 1" required></label>
  <button>Send signed SMS webhook</button>
</form>
<h2>SMS ({{ messages|length }})</h2>
<table><tr><th>time</th><th>to</th><th>text</th><th>status</th><th>sid</th></tr>
{% for m in messages|reverse %}
<tr><td>{{ m.at.isoformat() }}</td><td>{{ m.to }}</td><td>{{ m.body }}</td>
<td>{{ m.status }}</td><td>{{ m.sid }}</td></tr>
{% endfor %}</table>
<h2>Calls ({{ calls|length }})</h2>
<table><tr><th>time</th><th>to</th><th>spoken</th><th>status</th><th></th></tr>
{% for c in calls|reverse %}
<tr><td>{{ c.at.isoformat() }}</td><td>{{ c.to }}</td><td>{{ c.spoken|join(" ") }}</td>
<td>{{ c.status }}{% if c.digits %} (pressed {{ c.digits|join(",") }}){% endif %}</td>
<td>{% if c.gather_action %}<form method="post" action="{{ prefix }}/phone/press">
<input type="hidden" name="call" value="{{ c.sid }}"><input type="hidden" name="digits"
value="1"><button>press 1</button></form>{% endif %}</td></tr>
{% endfor %}</table>
</body></html>
"""

_MAILBOX = """\
<!doctype html>
<html><head><meta charset="utf-8"><title>ctiwatch mailbox</title>
<style>body{font-family:sans-serif;margin:1.5em} pre{background:#f4f4f4;padding:.6em}</style>
</head><body>
<h1>The mailbox</h1>
<p>Every mail ctiwatch sent to the local SMTP server (port {{ port }}).</p>
{% for m in messages|reverse %}
<section><h2>{{ m.subject }}</h2>
<p>From {{ m.mail_from }} to {{ m.rcpt_tos|join(", ") }}</p>
<pre>{{ m.text }}</pre></section>
{% else %}<p>No mail yet.</p>
{% endfor %}
</body></html>
"""


def _render(template: str, **context: object) -> str:
    env = jinja2.Environment(autoescape=True, cache_size=0)
    return env.from_string(template).render(**context)


def add_fake_views(
    app: web.Application,
    twilio: FakeTwilio | None,
    smtp: FakeSmtp | None,
    prefix: str = "/fake",
) -> None:
    prefix = prefix.rstrip("/")

    if twilio is not None:
        fake = twilio

        async def phone(request: web.Request) -> web.Response:
            numbers = sorted({m.to for m in fake.messages} | {c.to for c in fake.calls})
            html = _render(
                _PHONE,
                prefix=prefix,
                twilio_url=fake.url,
                messages=fake.messages,
                calls=fake.calls,
                numbers=numbers,
                result=request.query.get("result", ""),
            )
            return web.Response(text=html, content_type="text/html")

        async def phone_json(request: web.Request) -> web.Response:
            return web.json_response(
                {
                    "messages": [m.as_json() for m in fake.messages],
                    "calls": [c.as_json() for c in fake.calls],
                    "webhooks": [
                        {"url": w.url, "status": w.status, "body": w.body} for w in fake.webhooks
                    ],
                }
            )

        async def reply(request: web.Request) -> web.Response:
            form = await request.post()
            sender, body = str(form.get("from", "")).strip(), str(form.get("body", "")).strip()
            if not sender or not body:
                raise web.HTTPBadRequest(text="from and body are required")
            result = await fake.reply_sms(sender, body)
            raise web.HTTPSeeOther(
                app.router["fake-phone"]
                .url_for()
                .with_query(result=f"webhook answered {result.status}: {result.body[:300]}")
            )

        async def press(request: web.Request) -> web.Response:
            form = await request.post()
            try:
                result = await fake.press(str(form.get("call", "")), str(form.get("digits", "1")))
            except LookupError as exc:
                raise web.HTTPNotFound(text=str(exc)) from exc
            raise web.HTTPSeeOther(
                app.router["fake-phone"]
                .url_for()
                .with_query(result=f"webhook answered {result.status}: {result.body[:300]}")
            )

        app.router.add_get(f"{prefix}/phone", phone, name="fake-phone")
        app.router.add_get(f"{prefix}/phone.json", phone_json)
        app.router.add_post(f"{prefix}/phone/reply", reply)
        app.router.add_post(f"{prefix}/phone/press", press)

    if smtp is not None:
        mailbox_server = smtp

        async def mailbox(request: web.Request) -> web.Response:
            html = _render(_MAILBOX, messages=mailbox_server.messages, port=mailbox_server.port)
            return web.Response(text=html, content_type="text/html")

        async def mailbox_json(request: web.Request) -> web.Response:
            return web.json_response([m.as_json() for m in mailbox_server.messages])

        app.router.add_get(f"{prefix}/mailbox", mailbox)
        app.router.add_get(f"{prefix}/mailbox.json", mailbox_json)
