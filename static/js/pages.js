/* eventsite pages: clock times in the reader's time zone, the histogram's readout and keys,
   keyboard navigation of rows, the loading indicator, and time preferences.
   Pages work without this file (times then read in UTC); the live socket is js/feed.js. */
(function () {
  "use strict";
  var root = document.documentElement;

  // --- times ------------------------------------------------------------------------------------
  // <html data-tz="browser|utc" data-relative="on|off"> comes from the person's preferences.
  function zone() { return root.dataset.tz === "utc" ? "UTC" : undefined; }
  function zoneName() {
    if (zone()) return "UTC";
    try { return Intl.DateTimeFormat().resolvedOptions().timeZone || "local time"; } catch (e) { return "local time"; }
  }

  var formats = {};
  function parts(date) {
    var key = root.dataset.tz || "browser";
    if (!formats[key]) {
      formats[key] = new Intl.DateTimeFormat("en-GB", {
        timeZone: zone(), year: "numeric", month: "short", day: "2-digit", weekday: "short",
        hour: "2-digit", minute: "2-digit", second: "2-digit", hourCycle: "h23", timeZoneName: "short"
      });
    }
    var out = {};
    formats[key].formatToParts(date).forEach(function (p) { out[p.type] = p.value; });
    out.dayKey = out.year + "-" + out.month + "-" + out.day;
    out.hm = out.hour + ":" + out.minute;
    return out;
  }

  function full(date) {
    var p = parts(date);
    var ms = String(date.getMilliseconds() + 1000).slice(1);
    return p.day + " " + p.month + " " + p.year + " " + p.hm + ":" + p.second + "." + ms + " " + p.timeZoneName;
  }

  function ago(date) {
    var seconds = (Date.now() - date.getTime()) / 1000;
    var future = seconds < 0;
    seconds = Math.abs(seconds);
    if (seconds < 5) return "just now";
    var text;
    if (seconds < 60) text = Math.floor(seconds) + "s";
    else if (seconds < 3600) text = Math.floor(seconds / 60) + " min";
    else if (seconds < 86400) text = Math.floor(seconds / 3600) + " h";
    else text = Math.floor(seconds / 86400) + " d";
    return future ? "in " + text : text + " ago";
  }

  function dayLabel(p, today, yesterday) {
    if (p.dayKey === today) return "Today";
    if (p.dayKey === yesterday) return "Yesterday";
    return p.weekday + " " + p.day + " " + p.month + " " + p.year;
  }

  // Each list of rows: a clock time per row, with seconds only where a neighbour shares the
  // minute; a day heading wherever the day changes (or the list is not of today).
  function formatRows(list) {
    var rows = Array.prototype.slice.call(list.querySelectorAll(":scope > article.ev"));
    list.querySelectorAll(":scope > .day-sep").forEach(function (el) { el.remove(); });
    if (!rows.length) return;
    var now = new Date();
    var today = parts(now).dayKey;
    var yesterday = parts(new Date(now.getTime() - 86400000)).dayKey;
    var info = rows.map(function (row) {
      var time = row.querySelector("time.ev-time");
      var date = new Date(time.getAttribute("datetime"));
      return { row: row, time: time, date: date, p: parts(date) };
    });
    var spansDays = info[0].p.dayKey !== info[info.length - 1].p.dayKey || info[0].p.dayKey !== today;
    info.forEach(function (item, i) {
      var key = item.p.dayKey + " " + item.p.hm;
      var prev = info[i - 1], next = info[i + 1];
      var seconds = (prev && prev.p.dayKey + " " + prev.p.hm === key) ||
        (next && next.p.dayKey + " " + next.p.hm === key);
      item.time.textContent = item.p.hm + (seconds ? ":" + item.p.second : "");
      item.time.title = full(item.date) + " · " + ago(item.date);
      if (spansDays && (!prev || prev.p.dayKey !== item.p.dayKey)) {
        var sep = document.createElement("div");
        sep.className = "day-sep";
        sep.setAttribute("role", "presentation");
        sep.textContent = dayLabel(item.p, today, yesterday);
        list.insertBefore(sep, item.row);
      }
    });
  }

  function formatTimes(scope) {
    scope = scope || document;
    scope.querySelectorAll(".rows").forEach(formatRows);
    scope.querySelectorAll("time[data-format][datetime]").forEach(function (t) {
      var date = new Date(t.getAttribute("datetime"));
      if (isNaN(date)) return;
      var p = parts(date);
      if (t.dataset.format === "axis" || t.dataset.format === "short") t.textContent = p.day + " " + p.month + " " + p.hm;
      else t.textContent = full(date);
      t.title = full(date) + " · " + ago(date);
    });
    scope.querySelectorAll("[data-zone]").forEach(function (z) { z.textContent = "times in " + zoneName(); });
    scope.querySelectorAll("[data-relative][datetime]").forEach(function (t) {
      t.textContent = ago(new Date(t.getAttribute("datetime")));
    });
    labelBars(scope);
  }

  // Rows arrive from the live socket and "load more": format each list again when it changes.
  var pendingFormat = false;
  var observer = new MutationObserver(function (changes) {
    if (pendingFormat) return;
    var rowsChanged = changes.some(function (c) {
      return c.target.classList && c.target.classList.contains("rows") &&
        Array.prototype.some.call(c.addedNodes, function (n) { return n.tagName === "ARTICLE"; });
    });
    if (!rowsChanged) return;
    pendingFormat = true;
    requestAnimationFrame(function () {
      pendingFormat = false;
      document.querySelectorAll(".rows").forEach(formatRows);
    });
  });

  // --- histogram ----------------------------------------------------------------------------------
  var SEVERITIES = ["failed", "cancelled", "running", "completed", "other"];

  function barText(bar) {
    var start = new Date(bar.dataset.start), end = new Date(bar.dataset.end);
    var counts = (bar.dataset.counts || "").split(",").map(Number);
    var total = counts.reduce(function (a, b) { return a + b; }, 0);
    var ps = parts(start), pe = parts(new Date(end.getTime() + 1));
    var span = (ps.dayKey === parts(new Date()).dayKey ? "" : ps.day + " " + ps.month + " ") +
      ps.hm + (ps.second !== "00" ? ":" + ps.second : "") + "–" + pe.hm;
    var detail = [];
    counts.forEach(function (n, i) { if (n) detail.push(n.toLocaleString("en-US") + " " + SEVERITIES[i]); });
    return { span: span, total: total.toLocaleString("en-US") + " event" + (total === 1 ? "" : "s"), detail: detail };
  }

  function labelBars(scope) {
    scope.querySelectorAll("svg.histogram a[data-start]").forEach(function (bar) {
      var t = barText(bar);
      bar.setAttribute("aria-label", t.span + ", " + t.total + (t.detail.length ? ": " + t.detail.join(", ") : "") + ". Zoom in.");
      var title = bar.querySelector("title");
      if (title) title.remove(); // the readout replaces the browser's tooltip
    });
  }

  function showReadout(bar) {
    var box = document.getElementById("hist-readout");
    var svg = bar.closest("svg");
    if (!box || !svg) return;
    var t = barText(bar);
    box.textContent = "";
    var head = document.createElement("b");
    head.textContent = t.span + " · " + t.total;
    box.appendChild(head);
    var list = document.createElement("span");
    list.className = "readout-list";
    var counts = (bar.dataset.counts || "").split(",").map(Number);
    counts.forEach(function (n, i) {
      if (!n) return;
      var item = document.createElement("span");
      item.className = "s-" + SEVERITIES[i];
      item.textContent = n.toLocaleString("en-US") + " " + SEVERITIES[i];
      list.appendChild(item);
    });
    box.appendChild(list);
    box.hidden = false;
    var hit = bar.querySelector(".hit").getBoundingClientRect();
    var frame = svg.getBoundingClientRect();
    var left = hit.left + hit.width / 2 - frame.left - box.offsetWidth / 2;
    box.style.left = Math.max(0, Math.min(left, frame.width - box.offsetWidth)) + "px";
  }

  function hideReadout() {
    var box = document.getElementById("hist-readout");
    if (box) box.hidden = true;
  }

  document.addEventListener("mouseover", function (e) {
    var bar = e.target.closest && e.target.closest("svg.histogram a[data-start]");
    if (bar) showReadout(bar);
  });
  document.addEventListener("mouseout", function (e) {
    if (e.target.closest && e.target.closest("svg.histogram") &&
        !(e.relatedTarget && e.relatedTarget.closest && e.relatedTarget.closest("svg.histogram"))) hideReadout();
  });
  document.addEventListener("focusin", function (e) {
    var bar = e.target.closest && e.target.closest("svg.histogram a[data-start]");
    if (bar) showReadout(bar);
  });
  document.addEventListener("focusout", function (e) {
    if (e.target.closest && e.target.closest("svg.histogram")) hideReadout();
  });

  // One tab stop for all the bars; arrows, Home and End move between them.
  function moveBar(current, key) {
    var bars = Array.prototype.slice.call(current.closest("svg").querySelectorAll("a[data-start]"));
    var i = bars.indexOf(current);
    var next = key === "ArrowLeft" ? bars[i - 1] : key === "ArrowRight" ? bars[i + 1] :
      key === "Home" ? bars[0] : key === "End" ? bars[bars.length - 1] : null;
    if (!next) return false;
    bars.forEach(function (b) { b.setAttribute("tabindex", b === next ? "0" : "-1"); });
    next.focus();
    return true;
  }

  // --- keyboard: j/k move through rows, Enter opens, Esc goes back, ? shows help ----------------
  var selected = null;

  function visibleRows() {
    var main = document.getElementById("rows") || document.querySelector("main .rows");
    var scope = main && main.id === "rows" ? main : document.querySelector("main");
    return Array.prototype.slice.call(scope ? scope.querySelectorAll("article.ev") : [])
      .filter(function (r) { return r.offsetParent !== null; });
  }

  function select(row) {
    if (selected) selected.classList.remove("selected");
    selected = row;
    if (!row) return;
    row.classList.add("selected");
    var link = row.querySelector(".ev-label");
    if (link) link.focus({ preventScroll: true });
    row.scrollIntoView({ block: "nearest" });
  }

  function step(delta) {
    var rows = visibleRows();
    if (!rows.length) return;
    var i = rows.indexOf(selected);
    if (i === -1) {
      var focused = document.activeElement && document.activeElement.closest && document.activeElement.closest("article.ev");
      i = rows.indexOf(focused);
    }
    var next = i === -1 ? (delta > 0 ? 0 : rows.length - 1) : Math.max(0, Math.min(rows.length - 1, i + delta));
    select(rows[next]);
  }

  function back() {
    var sameSite = document.referrer && document.referrer.indexOf(location.origin + "/") === 0;
    if (sameSite && history.length > 1) history.back();
    else location.href = "/events/";
  }

  document.addEventListener("keydown", function (e) {
    if (e.defaultPrevented || e.ctrlKey || e.metaKey || e.altKey) return;
    var t = e.target;
    var bar = t.closest && t.closest("svg.histogram a[data-start]");
    if (bar && moveBar(bar, e.key)) { e.preventDefault(); return; }
    var typing = /^(INPUT|TEXTAREA|SELECT)$/.test(t.tagName) || t.isContentEditable;
    if (typing) return;
    var dialog = document.getElementById("keys");
    if (dialog && dialog.open) return;
    if (e.key === "j" || e.key === "k") {
      e.preventDefault();
      step(e.key === "j" ? 1 : -1);
    } else if (e.key === "?") {
      e.preventDefault();
      openHelp();
    } else if (e.key === "Escape") {
      if (document.querySelector("details.menu[open]")) return; // feed.js closes menus
      if (selected) { select(null); if (document.activeElement) document.activeElement.blur(); return; }
      if (document.querySelector(".detail, .resource-page")) { e.preventDefault(); back(); }
    }
  });

  function openHelp() {
    var dialog = document.getElementById("keys");
    if (dialog && !dialog.open) dialog.showModal();
  }

  document.addEventListener("click", function (e) {
    if (e.target.closest && e.target.closest("[data-keys-help]")) openHelp();
  });

  // --- loading: every htmx request shows the bar; long ones say what they are doing ------------
  var inFlight = 0;
  var wordsTimer = null;

  function busyWords(elt) {
    var source = elt.closest && elt.closest("[data-busy]");
    if (!source) return "Loading…";
    var q = source.querySelector && source.querySelector("input[name=q]");
    if (source.dataset.busySearch && q && q.value.trim()) return source.dataset.busySearch;
    return source.dataset.busy;
  }

  document.addEventListener("htmx:beforeRequest", function (e) {
    var busy = document.getElementById("busy");
    if (!busy) return;
    inFlight++;
    busy.classList.add("on");
    var target = e.detail.target;
    if (target && target.setAttribute) target.setAttribute("aria-busy", "true");
    var words = busyWords(e.detail.elt);
    clearTimeout(wordsTimer);
    if (words) {
      // Quick answers never flash words; a wait past half a second says what it is.
      wordsTimer = setTimeout(function () { busy.querySelector(".busy-text").textContent = words; }, 500);
    }
  });

  document.addEventListener("htmx:afterRequest", function (e) {
    var busy = document.getElementById("busy");
    if (!busy) return;
    inFlight = Math.max(0, inFlight - 1);
    var target = e.detail.target;
    if (target && target.removeAttribute) target.removeAttribute("aria-busy");
    if (!inFlight) {
      clearTimeout(wordsTimer);
      busy.classList.remove("on");
      busy.querySelector(".busy-text").textContent = "";
    }
  });

  document.addEventListener("htmx:responseError", function (e) {
    var status = e.detail.xhr ? e.detail.xhr.status : "";
    toast("The server answered " + status + "; nothing changed. Try again, or reload the page.", "error");
  });
  document.addEventListener("htmx:sendError", function () {
    toast("Could not reach the server. Check the connection and try again.", "error");
  });
  // Views answer htmx with `HX-Trigger: {"eventsite:toast": {"text": …}}` to confirm a change.
  document.addEventListener("eventsite:toast", function (e) {
    if (e.detail && e.detail.text) toast(e.detail.text, "success");
  });

  function toast(text, kind) {
    var box = document.querySelector(".toasts");
    if (!box) {
      box = document.createElement("div");
      box.className = "toasts";
      document.body.appendChild(box);
    }
    var item = document.createElement("div");
    item.setAttribute("role", kind === "error" ? "alert" : "status");
    item.className = "toast " + (kind || "");
    var span = document.createElement("span");
    span.textContent = text;
    item.appendChild(span);
    var close = document.createElement("button");
    close.type = "button";
    close.setAttribute("data-dismiss", "");
    close.setAttribute("aria-label", "Dismiss");
    close.textContent = "×";
    item.appendChild(close);
    box.appendChild(item);
  }

  // --- time preferences: applied at once, saved by htmx (a plain POST without JavaScript) -------
  document.addEventListener("change", function (e) {
    var form = e.target.form;
    if (!form || !form.classList.contains("time-prefs")) return;
    var tz = form.querySelector("input[name=time_zone]:checked");
    root.dataset.tz = tz ? tz.value : "browser";
    root.dataset.relative = form.querySelector("input[name=relative_times]").checked ? "on" : "off";
    formatTimes();
  });

  // Counts by event fold away on a phone (closed before the first paint, see events/feed.html)
  // and are always open on a wider screen.
  var narrow = window.matchMedia("(max-width: 700px)");
  function syncNamesFold() {
    var fold = document.getElementById("names-fold");
    if (fold && !narrow.matches) fold.open = true;
  }
  if (narrow.addEventListener) narrow.addEventListener("change", syncNamesFold);

  // --- start ----------------------------------------------------------------------------------------
  function start() {
    formatTimes();
    observer.observe(document.body, { childList: true, subtree: true });
  }
  document.addEventListener("htmx:afterSettle", function () {
    selected = null;
    formatTimes();
  });
  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", start);
  else start();
})();
