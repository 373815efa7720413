"""The Jinja templates of the fake phone and the mailbox pages.

They extend the console's ``base.html`` (same header, colours, cards and forms), fill its
``nav_extra`` block with links to each other and add their own styles in its ``style`` block.
Kept here as strings so they ship with the package like the module itself.
"""

from __future__ import annotations

_NAV = """\
{% macro fake_nav() %}
{% if phone_url %}
<a href="{{ phone_url }}" class="{{ 'active' if page == 'phone' else '' }}">Fake phone</a>
{% endif %}
{% if mailbox_url %}
<a href="{{ mailbox_url }}" class="{{ 'active' if page == 'mailbox' else '' }}">Mailbox</a>
{% endif %}
{% endmacro %}
{% macro when(dt) %}
{%- if dt -%}
<time datetime="{{ dt|iso }}"
 title="{{ dt|local('%A %d %B %Y %H:%M:%S %Z') }}">{{ dt|local }}</time>
{%- else %}<span class="muted">—</span>{% endif -%}
{% endmacro %}
{% macro pill(status) -%}
<span class="pill {{ status|status_class }}">{{ status }}</span>
{%- endmacro %}
{% macro trail(history) -%}
{% if history|length > 1 %}<span class="trail">
{%- for status, at in history %}{{ ' → ' if not loop.first else '' }}<span
 title="{{ at|local('%A %d %B %Y %H:%M:%S %Z') }}">{{ status }} {{ at|local('%H:%M:%S') }}</span>
{%- endfor %}</span>{% endif %}
{%- endmacro %}
"""

_STYLE = """\
.page-head { display: flex; justify-content: space-between; align-items: flex-end; gap: 16px;
  flex-wrap: wrap; margin-bottom: 16px; }
.page-head h1 { margin: 0 0 4px; }
.page-head p { margin: 0; }
.page-links { display: flex; gap: 8px; flex-wrap: wrap; }
.page-links a { background: var(--card); border: 1px solid var(--border); border-radius: 999px;
  padding: 4px 12px; font-size: 13px; font-weight: 600; }
.page-links a:hover { text-decoration: none; border-color: var(--link); }
code { font: 13px/1.4 ui-monospace, SFMono-Regular, Menlo, Consolas, monospace;
  background: var(--unknown-bg); padding: 1px 5px; border-radius: 4px; }
.count { background: var(--unknown-bg); color: var(--muted); border-radius: 999px;
  font-size: 12px; font-weight: 700; padding: 1px 9px; }
.sid { font: 11px ui-monospace, SFMono-Regular, Menlo, Consolas, monospace; color: var(--muted); }
"""

PHONE = (
    """\
{% extends "base.html" %}
{% from "fake_nav.html" import fake_nav, when, pill, trail with context %}
{% block title %}Fake phone{% endblock %}
{% block nav_extra %}{{ fake_nav() }}{% endblock %}
{% block style %}
"""
    + _STYLE
    + """\
.reply { border-left: 4px solid var(--link); }
.reply-form { display: grid; grid-template-columns: minmax(0, 220px) minmax(0, 1fr) auto;
  gap: 12px; align-items: end; }
.reply-form label { margin-top: 0; }
.reply-form input { font-size: 16px; }
.reply-form button { padding: 9px 20px; font-size: 15px; }
@media (max-width: 700px) { .reply-form { grid-template-columns: 1fr; } }
.commands { margin: 10px 0 0; }
.grid2 { margin-bottom: 18px; }
.answer { display: flex; gap: 10px; align-items: flex-start; }
.answer .bubble { background: #fff; color: var(--text); border: 1px solid var(--border); }
.thread { display: flex; flex-direction: column; gap: 14px; }
.sms { display: flex; flex-direction: column; align-items: flex-end; }
.sms-meta, .sms-foot { font-size: 12px; color: var(--muted); display: flex; gap: 8px;
  align-items: center; flex-wrap: wrap; justify-content: flex-end; }
.sms-meta strong { color: var(--text); }
.person + .person { border-top: 1px solid var(--border); padding-top: 14px; }
.person h3 { margin: 0 0 8px; font-size: 15px; display: flex; gap: 8px; align-items: center;
  flex-wrap: wrap; }
.person .thread { gap: 10px; }
.sms.in { align-items: flex-start; }
.sms.in .sms-meta, .sms.in .sms-foot { justify-content: flex-start; }
.sms.in .bubble { background: #fff; color: var(--text); border: 1px solid var(--border);
  border-radius: 18px 18px 18px 4px; }
.trail { font-size: 11px; color: var(--muted); overflow-wrap: anywhere; }
.answer-form { display: grid; grid-template-columns: minmax(0, 220px) minmax(0, 1fr) auto;
  gap: 12px; align-items: end; }
.answer-form label { margin-top: 0; }
@media (max-width: 700px) { .answer-form { grid-template-columns: 1fr; } }
.bubble { background: var(--link); color: #fff; border-radius: 18px 18px 4px 18px;
  padding: 9px 14px; margin: 4px 0; max-width: 88%; white-space: pre-wrap;
  overflow-wrap: anywhere; box-shadow: var(--shadow); }
.call { border: 1px solid var(--border); border-radius: 8px; padding: 12px 14px; }
.call + .call { margin-top: 12px; }
.call-head { display: flex; justify-content: space-between; gap: 8px; flex-wrap: wrap;
  font-size: 13px; color: var(--muted); }
.call-head strong { color: var(--text); }
.spoken { margin: 10px 0; padding: 8px 12px; background: var(--bg); border-left: 3px solid
  var(--border); border-radius: 4px; font-style: italic; }
.spoken p { margin: 0; }
.spoken p + p { margin-top: 6px; }
.call .actions { margin-top: 0; justify-content: space-between; }
.call form { margin: 0; }
.pressed { font-size: 13px; font-weight: 600; color: var(--ok); }
.webhooks td { font-size: 13px; }
.webhooks td.body { font-family: ui-monospace, SFMono-Regular, Menlo, Consolas, monospace;
  font-size: 12px; color: var(--muted); overflow-wrap: anywhere; }
{% endblock %}
{% block content %}
<div class="page-head">
  <div>
    <h1>Fake phone</h1>
    <p class="muted small">Every text message and call ctiwatch sent through the fake Twilio
      at <code>{{ twilio_url }}</code>, newest first. Nothing here reaches a real phone.</p>
  </div>
  <div class="page-links">
    <a href="{{ status_url }}">Status page</a>
    {% if mailbox_url %}<a href="{{ mailbox_url }}">Mailbox</a>{% endif %}
    <a href="{{ phone_url }}.json">JSON</a>
  </div>
</div>
{% if result %}
<div class="alert {{ 'notice' if result_ok else 'error' }}" role="status">
  <div>{{ result }}</div>
</div>
{% endif %}
{% if told %}
<div class="alert notice" role="status"><div>The phone at {{ told }}.</div></div>
{% endif %}
<section class="card reply">
  <h2>Reply by SMS as an on-call person</h2>
  <form class="reply-form" method="post" action="{{ phone_url }}/reply">
    <input type="hidden" name="csrf_token" value="{{ csrf }}">
    <div>
      <label for="from">From</label>
      <input type="text" id="from" name="from" value="{{ numbers[0] if numbers else '' }}"
             list="numbers" placeholder="+31612345678" required>
      <datalist id="numbers">{% for n in numbers %}<option value="{{ n }}">{% endfor %}</datalist>
    </div>
    <div>
      <label for="body">Text</label>
      <input type="text" id="body" name="body" placeholder="ACK 1" autocomplete="off" required>
    </div>
    <button type="submit">Send SMS</button>
  </form>
  <p class="commands muted small"><code>ACK 12</code> acknowledges incident 12 ·
    <code>RESOLVE 12</code> resolves it · <code>STATUS</code> lists the open incidents.
    The fake Twilio signs the webhook as Twilio does and posts it to ctiwatch; the reply and
    ctiwatch's answer appear in that person's thread below.</p>
</section>
<section class="card">
  <h2>How the phones answer</h2>
  <form class="answer-form" method="post" action="{{ phone_url }}/answer">
    <input type="hidden" name="csrf_token" value="{{ csrf }}">
    <div>
      <label for="answer-number">Number</label>
      <input type="text" id="answer-number" name="number"
             value="{{ numbers[0] if numbers else '' }}" list="numbers"
             placeholder="+31612345678" required>
    </div>
    <div>
      <label for="answer-mode">From now on the phone</label>
      <select id="answer-mode" name="mode">
      {% for mode in modes %}<option value="{{ mode }}">{{ mode_words[mode] }}</option>{% endfor %}
      </select>
    </div>
    <button type="submit">Set</button>
  </form>
  <p class="commands muted small">Every phone answers unless told otherwise here. An SMS goes
    queued → sent → delivered; a call queued → ringing → in-progress → completed, or ends
    no-answer, busy or failed. Each change is posted, signed, to ctiwatch's status callback.
  {% if phones %}Told:
    {% for number, mode in phones|dictsort %}<code>{{ number }}</code> {{ mode_words[mode] }}
    {{- '; ' if not loop.last else '.' }}{% endfor %}
  {% endif %}</p>
</section>
<div class="grid2">
  <section class="card">
    <h2>Text messages <span class="count">{{ sms_count }}</span></h2>
    {% for t in threads %}
    <section class="person" data-number="{{ t.number }}">
      <h3>{{ t.number }}{% if t.mode != 'answer' %}
        <span class="pill s-down">{{ t.mode }}</span>{% endif %}</h3>
      <div class="thread">
      {% for m in t.messages %}
        {% if m.direction == 'inbound' %}
        <article class="sms in" data-sid="{{ m.sid }}" data-direction="inbound">
          <div class="sms-meta"><span>reply from <strong>{{ m.from_ }}</strong></span>
            · {{ when(m.at) }}</div>
          <div class="bubble">{{ m.body }}</div>
          <div class="sms-foot">{{ pill(m.status) }}<span class="sid">{{ m.sid }}</span></div>
        </article>
        {% else %}
        <article class="sms" data-sid="{{ m.sid }}" data-direction="{{ m.direction }}">
          <div class="sms-meta"><span>{{ 'answer ' if m.direction == 'outbound-reply' else '' -}}
            to <strong>{{ m.to }}</strong> from {{ m.from_ }}</span> · {{ when(m.at) }}</div>
          <div class="bubble">{{ m.body }}</div>
          <div class="sms-foot">{{ pill(m.status) }}{{ trail(m.history) }}
            <span class="sid">{{ m.sid }}</span></div>
        </article>
        {% endif %}
      {% endfor %}
      </div>
    </section>
    {% else %}
      <p class="empty">No text messages yet.</p>
    {% endfor %}
  </section>
  <section class="card">
    <h2>Calls <span class="count">{{ calls|length }}</span></h2>
    {% for c in calls %}
    <article class="call" data-sid="{{ c.sid }}">
      <div class="call-head">
        <span>Call to <strong>{{ c.to }}</strong> from {{ c.from_ }}</span>
        {{ when(c.at) }}
      </div>
      <div class="spoken">
      {% for sentence in c.spoken %}<p>&ldquo;{{ sentence }}&rdquo;</p>
      {% else %}<p class="muted">{{ 'Plays ' ~ c.url if c.url else 'Says nothing.' }}</p>
      {% endfor %}
      </div>
      <div class="actions">
        <span>{{ pill(c.status) }}
          {% if c.digits %}<span class="pressed">pressed {{ c.digits|join(", ") }}</span>{% endif %}
          {{ trail(c.history) }} <span class="sid">{{ c.sid }}</span></span>
        {% if c.gather_action %}
        <form method="post" action="{{ phone_url }}/press">
          <input type="hidden" name="csrf_token" value="{{ csrf }}">
          <input type="hidden" name="call" value="{{ c.sid }}">
          <input type="hidden" name="digits" value="1">
          <button type="submit" class="small">Press 1</button>
        </form>
        {% endif %}
      </div>
    </article>
    {% else %}
    <p class="empty">No calls yet.</p>
    {% endfor %}
  </section>
</div>
{% if webhooks %}
<section class="card">
  <h2>Webhooks posted to ctiwatch <span class="count">{{ webhooks|length }}</span></h2>
  <div class="table-scroll">
  <table class="webhooks">
    <tr><th>URL</th><th>Answer</th><th>Body</th></tr>
    {% for w in webhooks %}
    <tr><td>{{ w.url }}</td><td>{{ w.status }}</td>
      <td class="body">{{ w.body|truncate(300) }}</td></tr>
    {% endfor %}
  </table>
  </div>
</section>
{% endif %}
{% endblock %}
"""
)

MAILBOX = (
    """\
{% extends "base.html" %}
{% from "fake_nav.html" import fake_nav, when with context %}
{% block title %}Mailbox{% endblock %}
{% block nav_extra %}{{ fake_nav() }}{% endblock %}
{% block style %}
"""
    + _STYLE
    + """\
.mails { border-top: 1px solid var(--border); }
.mail-cols, .mail > summary { display: grid;
  grid-template-columns: minmax(0, 1fr) minmax(0, 240px) 150px; gap: 12px; align-items: baseline; }
.mail-cols { padding: 0 10px 6px 30px; font-size: 12px; text-transform: uppercase;
  letter-spacing: .4px; color: var(--muted); font-weight: 600; }
.mail { border-bottom: 1px solid var(--border); }
.mail:last-child { border-bottom: 0; }
.mail > summary { cursor: pointer; padding: 10px 10px 10px 30px; list-style: none;
  position: relative; }
.mail > summary::-webkit-details-marker { display: none; }
.mail > summary::before { content: "\\25B8"; position: absolute; left: 10px; color: var(--muted); }
.mail[open] > summary::before { content: "\\25BE"; }
.mail > summary:hover { background: var(--bg); }
.mail .subject { font-weight: 600; overflow-wrap: anywhere; }
.mail .to { color: var(--muted); font-size: 14px; overflow-wrap: anywhere; }
.mail time { font-size: 13px; color: var(--muted); white-space: nowrap; }
.mail-body { padding: 4px 10px 16px 30px; }
.meta { display: grid; grid-template-columns: max-content 1fr; gap: 2px 12px; margin: 0 0 10px;
  font-size: 13px; }
.meta dt { color: var(--muted); }
.meta dd { margin: 0; overflow-wrap: anywhere; }
pre.text { background: var(--bg); border: 1px solid var(--border); border-radius: 8px;
  padding: 12px 14px; margin: 0; white-space: pre-wrap; overflow-wrap: anywhere;
  font: 13px/1.5 ui-monospace, SFMono-Regular, Menlo, Consolas, monospace; }
.html-part { margin-top: 10px; }
.html-part > summary { cursor: pointer; font-weight: 600; font-size: 14px; color: var(--link); }
.html-part iframe { display: block; width: 100%; height: 520px; margin-top: 8px;
  border: 1px solid var(--border); border-radius: 8px; background: #fff; }
@media (max-width: 700px) { .mail-cols { display: none; }
  .mail > summary { grid-template-columns: 1fr; gap: 2px; } }
{% endblock %}
{% block content %}
<div class="page-head">
  <div>
    <h1>Mailbox</h1>
    <p class="muted small">Every mail ctiwatch sent to the local SMTP server on port
      <code>{{ port }}</code>, newest first. Nothing here leaves this machine.</p>
  </div>
  <div class="page-links">
    <a href="{{ status_url }}">Status page</a>
    {% if phone_url %}<a href="{{ phone_url }}">Fake phone</a>{% endif %}
    <a href="{{ mailbox_url }}.json">JSON</a>
  </div>
</div>
<section class="card">
  <h2>Mail <span class="count">{{ mails|length }}</span></h2>
  {% if duplicates %}<p class="muted small">{{ duplicates }}
    resent mail{{ 's' if duplicates != 1 else '' }} with a Message-ID already delivered
    {{ 'were' if duplicates != 1 else 'was' }} accepted but not
    delivered again.</p>{% endif %}
  {% if mails %}
  <div class="mail-cols"><span>Subject</span><span>To</span><span>Sent</span></div>
  <div class="mails">
  {% for m in mails %}
    <details class="mail" data-index="{{ m.index }}"{{ ' open' if loop.first else '' }}>
      <summary><span class="subject">{{ m.subject or '(no subject)' }}</span>
        <span class="to">{{ m.to|join(", ") }}</span>{{ when(m.at) }}</summary>
      <div class="mail-body">
        <dl class="meta">
          <dt>From</dt><dd>{{ m.sender }}</dd>
          <dt>To</dt><dd>{{ m.to|join(", ") }}</dd>
          {% if m.message_id %}
          <dt>Message-ID</dt><dd><code>{{ m.message_id }}</code></dd>
          {% endif %}
        </dl>
        <pre class="text">{{ m.text or '(no plain-text part)' }}</pre>
        {% if m.has_html %}
        <details class="html-part">
          <summary>HTML part</summary>
          <p class="small"><a href="{{ mailbox_url }}/{{ m.index }}.html" target="_blank"
             rel="noopener">Open in a new tab &#8599;</a></p>
          <iframe src="{{ mailbox_url }}/{{ m.index }}.html" title="HTML part of {{ m.subject }}"
                  loading="lazy" sandbox="allow-popups allow-popups-to-escape-sandbox"></iframe>
        </details>
        {% endif %}
      </div>
    </details>
  {% endfor %}
  </div>
  {% else %}
  <p class="empty">No mail yet.</p>
  {% endif %}
</section>
{% endblock %}
"""
)

TEMPLATES = {"fake_nav.html": _NAV, "fake_phone.html": PHONE, "fake_mailbox.html": MAILBOX}
