// Live status page. The server streams its state version over Server-Sent Events (/events);
// on a new version the page fetches the live fragment (/fragments/status, rendered once per
// state on the server) and swaps #live. Without EventSource (or while /events is refused) it
// polls the fragment every 10 s; without JavaScript the page reloads itself every 30 s.
// Relative times ("42s ago") tick every second.
(function () {
  "use strict";
  var POLL = 10000;
  // A fragment older than the state last heard of (from /events, or a fragment's
  // X-Ctiwatch-State header when polling: the server builds new figures behind the view it
  // serves) is asked for again this much later, until it catches up.
  var CATCH_UP = 1000;
  var catchUp = null;
  var live = document.getElementById("live");
  if (!live) { return; }
  var serverOffset = 0; // server time minus browser time, from the last fragment
  var shown = null; // the fragment on screen
  var pending = null;
  var polling = null;

  function human(seconds) {
    var s = Math.max(0, Math.floor(seconds));
    if (s < 60) { return s + "s"; }
    var m = Math.floor(s / 60);
    if (m < 60) { return m + "m"; }
    var h = Math.floor(m / 60);
    if (h < 48) { return h + "h " + String(m % 60).padStart(2, "0") + "m"; }
    return Math.floor(h / 24) + "d " + (h % 24) + "h";
  }

  function tick() {
    var now = Date.now() + serverOffset;
    var items = document.querySelectorAll("time[data-ago]");
    for (var i = 0; i < items.length; i++) {
      var at = Date.parse(items[i].getAttribute("datetime"));
      if (isNaN(at)) { continue; }
      var delta = (now - at) / 1000;
      items[i].textContent = delta < 0 ? "in " + human(-delta) : human(delta) + " ago";
    }
  }

  function setState(ok, text) {
    document.body.classList.toggle("offline", !ok);
    document.body.setAttribute("data-live", ok ? "ok" : "error");
    var state = document.getElementById("live-state");
    if (state) { state.textContent = text; }
  }

  function label() {
    return polling === null ? "live" : "live · refreshes every 10 s";
  }

  function swap(html) {
    if (html !== shown) {
      shown = html;
      live.innerHTML = html;
    }
    var stamp = document.getElementById("generated");
    if (stamp) {
      var at = Date.parse(stamp.getAttribute("datetime"));
      if (!isNaN(at)) { serverOffset = at - Date.now(); }
      var heard = Number(live.getAttribute("data-state-version"));
      var built = Number(stamp.getAttribute("data-state"));
      if (stamp.getAttribute("data-state") && heard > built && catchUp === null) {
        catchUp = setTimeout(function () { catchUp = null; refresh(); }, CATCH_UP);
      }
    }
    setState(true, label());
    tick();
  }

  function refresh() {
    if (pending) { return pending; }
    pending = fetch(live.getAttribute("data-fragment") || "/fragments/status", { cache: "no-store" })
      .then(function (response) {
        if (!response.ok) { throw new Error("HTTP " + response.status); }
        var state = Number(response.headers.get("X-Ctiwatch-State"));
        if (state > Number(live.getAttribute("data-state-version"))) {
          live.setAttribute("data-state-version", String(state));
        }
        return response.text();
      })
      .then(swap)
      .catch(function () { setState(false, "connection lost · retrying"); })
      .then(function () { pending = null; });
    return pending;
  }

  function poll() {
    if (polling === null) {
      polling = setInterval(function () { if (!document.hidden) { refresh(); } }, POLL);
      refresh();
    }
  }

  function listen() {
    // A kiosk link polls its own fragment (data-events empty); the console listens to /events.
    var events = live.getAttribute("data-events");
    if (!window.EventSource || events === "") { poll(); return; }
    var source = new EventSource(events || "/events");
    var opened = false;
    source.addEventListener("state", function (event) {
      live.setAttribute("data-state-version", event.data);
      refresh();
    });
    source.onopen = function () { opened = true; setState(true, label()); };
    source.onerror = function () {
      if (!opened) { source.close(); poll(); return; } // refused (e.g. 503): poll instead
      setState(false, "connection lost · reconnecting");
    };
  }

  listen();
  refresh();
  setInterval(tick, 1000);
  document.addEventListener("visibilitychange", function () { if (!document.hidden) { refresh(); } });
})();
