// Live status page: poll the JSON API every 10 s; when anything changed, fetch the page again
// and swap the #live section (one renderer: the server's). Relative times tick every second.
(function () {
  "use strict";
  var PERIOD = 10000;
  var live = document.getElementById("live");
  if (!live) { return; }
  var lastKey = null;
  var serverOffset = 0; // server time minus browser time, from the last answer

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

  function swap(html) {
    var doc = new DOMParser().parseFromString(html, "text/html");
    var fresh = doc.getElementById("live");
    if (fresh) { live.innerHTML = fresh.innerHTML; }
  }

  function refresh() {
    if (document.hidden) { return Promise.resolve(); }
    return fetch(live.getAttribute("data-api") || "/api/v1/status", { cache: "no-store", headers: { "Accept": "application/json" } })
      .then(function (response) {
        if (!response.ok) { throw new Error("HTTP " + response.status); }
        return response.json();
      })
      .then(function (status) {
        serverOffset = Date.parse(status.generated_at) - Date.now();
        var generated = status.generated_at;
        status.generated_at = null;
        var key = JSON.stringify(status);
        var changed = lastKey !== null && key !== lastKey;
        lastKey = key;
        var done = changed
          ? fetch(live.getAttribute("data-page") || "/", { cache: "no-store" }).then(function (r) { return r.text(); }).then(swap)
          : Promise.resolve();
        return done.then(function () {
          var stamp = document.getElementById("generated");
          if (stamp) {
            stamp.setAttribute("datetime", generated);
            stamp.textContent = new Date(Date.parse(generated)).toLocaleTimeString("en-GB", {
              timeZone: live.getAttribute("data-tz") || undefined, hour12: false
            });
          }
          setState(true, "live · refreshes every 10 s");
          tick();
        });
      })
      .catch(function () { setState(false, "connection lost · retrying"); });
  }

  refresh();
  setInterval(refresh, PERIOD);
  setInterval(tick, 1000);
  document.addEventListener("visibilitychange", function () { if (!document.hidden) { refresh(); } });
})();
