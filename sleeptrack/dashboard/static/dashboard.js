/* sleeptrack dashboard: refresh an OPEN / CLOSED session page as real-time results arrive (no framework). */
(function () {
  "use strict";
  var box = document.getElementById("live");
  if (!box || !box.dataset.liveUrl) return;
  var url = box.dataset.liveUrl, version = box.dataset.version, state = box.dataset.state;
  var every = parseInt(box.dataset.interval, 10) || 10000;
  function tick() {
    fetch(url, { credentials: "same-origin", headers: { Accept: "application/json" } })
      .then(function (r) { if (!r.ok) throw new Error(r.status); return r.json(); })
      .then(function (d) {
        if (d.state !== state) { window.location.reload(); return; }  // closed or complete: statistics appear
        if (d.version !== version) { version = d.version; box.dataset.version = version; box.innerHTML = d.html; }
        window.setTimeout(tick, every);
      })
      .catch(function () { window.setTimeout(tick, every * 3); });
  }
  window.setTimeout(tick, every);
})();
