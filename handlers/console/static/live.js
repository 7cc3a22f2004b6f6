// The Live page: receipts pushed by the server as server-sent events
// (/ui/live/events), one row per receipt, updated in place, newest first.
// Everything is built with textContent: nothing from the server is parsed
// as HTML.
(function () {
  "use strict";
  var rows = document.getElementById("rows");
  var conn = document.getElementById("conn");
  var byId = {};

  function el(tag, cls, text) {
    var e = document.createElement(tag);
    if (cls) e.className = cls;
    if (text !== undefined) e.textContent = text;
    return e;
  }

  function link(href, text) {
    if (!href) return el("span", "", text || "–");
    var a = el("a", "", text);
    a.href = href;
    return a;
  }

  function render(r) {
    var tr = el("tr", "receipt");
    tr.dataset.receipt = r.receiptId;
    tr.dataset.source = r.source;
    tr.dataset.status = r.status;
    var c = el("td"); c.appendChild(link(r.href, r.receiptId)); tr.appendChild(c);
    c = el("td"); c.appendChild(link(r.userHref, r.userId)); tr.appendChild(c);
    c = el("td"); var steps = el("div", "steps");
    (r.stages || []).forEach(function (s) {
      var st = el("span", "step " + s.name + (s.reported ? " done" : ""), s.name);
      st.title = s.name + (s.reported ? ": reported" : ": not reported");
      steps.appendChild(st);
    });
    c.appendChild(steps); tr.appendChild(c);
    c = el("td"); c.appendChild(el("span", "status " + r.status.toLowerCase(), r.status)); tr.appendChild(c);
    tr.appendChild(el("td", "num", r.points));
    c = el("td");
    if (r.failure) c.appendChild(el("div", "bad", r.failure));
    r.anomalies.forEach(function (a) { c.appendChild(el("span", "pill warn", a)); });
    tr.appendChild(c);
    return tr;
  }

  function upsert(r) {
    var empty = rows.querySelector("tr.empty");
    if (empty) empty.remove();
    var tr = render(r);
    var old = byId[r.source + "/" + r.receiptId];
    if (old) old.remove();
    byId[r.source + "/" + r.receiptId] = tr;
    rows.insertBefore(tr, rows.firstChild);
    tr.classList.add("flash");
    while (rows.children.length > 100) {
      var last = rows.lastChild;
      delete byId[last.dataset.source + "/" + last.dataset.receipt];
      last.remove();
    }
  }

  var es = new EventSource("/ui/live/events");
  es.addEventListener("hello", function () { conn.textContent = "live"; conn.className = "pill live"; });
  es.addEventListener("receipt", function (ev) { upsert(JSON.parse(ev.data)); });
  es.addEventListener("denied", function (ev) {
    conn.textContent = "refused: " + JSON.parse(ev.data).error; conn.className = "pill down"; es.close();
  });
  es.onerror = function () {
    conn.className = "pill down";
    // A refused stream (401: the session ended) is not retried by the
    // browser; a dropped one is.
    conn.textContent = es.readyState === EventSource.CLOSED ? "disconnected: reload the page to sign in again" : "reconnecting…";
  };
})();
