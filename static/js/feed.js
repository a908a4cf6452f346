/* eventsite pages: the live feed socket, keyboard shortcuts, copy buttons, relative times.
   Pages work without this file; it makes the feed live and a little quicker to use. */
(function () {
  "use strict";

  // --- live feed --------------------------------------------------------------------------------
  var socket = null;
  var socketQuery = null;
  var retryDelay = 500;
  var retryTimer = null;
  var paused = false;
  var buffered = []; // {html, count} frames held while paused or scrolled away from the top
  var bufferedCount = 0;
  var lastHeard = null; // server time (ISO) of the newest thing this page knows about

  function main() { return document.getElementById("feed-main"); }

  function setState(state, text) {
    var live = document.getElementById("live");
    if (!live) return;
    live.dataset.state = state;
    live.querySelector(".live-text").textContent = text;
  }

  var everLive = false; // this page's socket was live once: a new attempt is a reconnect

  function connect() {
    var el = main();
    if (!el) return;
    clearTimeout(retryTimer);
    // A window that ended in the past gets no new rows: no socket, and no live state shown.
    if (el.dataset.live !== "on") { setState("ended", "not live"); return; }
    var query = el.dataset.wsQuery || "";
    socketQuery = query;
    if (!lastHeard) lastHeard = el.dataset.liveAfter;
    var params = query ? query + "&" : "";
    params += "live_after=" + encodeURIComponent(lastHeard || "");
    params += "&rendered=" + encodeURIComponent(el.dataset.liveAfter || "");
    var scheme = location.protocol === "https:" ? "wss://" : "ws://";
    var ws = new WebSocket(scheme + location.host + "/ws/feed/?" + params);
    socket = ws;
    if (everLive) setState("reconnecting", "reconnecting…");
    else setState("off", "connecting…");
    ws.onopen = function () {
      retryDelay = 500;
      everLive = true;
      setState(paused ? "paused" : "live", paused ? "paused" : "live");
    };
    ws.onmessage = function (message) {
      var data;
      try { data = JSON.parse(message.data); } catch (e) { return; }
      if (data.type === "rows" && data.html) receive(data.html);
    };
    ws.onclose = function () {
      if (socket !== ws) return; // replaced by a newer connection on purpose
      socket = null;
      // Lost until the next attempt, then "reconnecting…" while it is under way.
      setState("lost", everLive ? "connection lost" : "offline");
      // Back off so a restarting server is not hammered; jitter spreads many open tabs.
      retryTimer = setTimeout(connect, retryDelay + Math.random() * 250);
      retryDelay = Math.min(retryDelay * 2, 15000);
    };
  }

  function disconnect() {
    clearTimeout(retryTimer);
    if (socket) {
      var ws = socket;
      socket = null;
      ws.close();
    }
  }

  function atTop() {
    var rows = document.getElementById("rows");
    if (!rows) return true;
    return rows.getBoundingClientRect().top >= 0 || window.scrollY < 40;
  }

  function receive(html) {
    var template = document.createElement("template");
    template.innerHTML = html;
    var fresh = [];
    template.content.querySelectorAll("article.ev").forEach(function (row) {
      if (row.dataset.received && (!lastHeard || row.dataset.received > lastHeard)) {
        lastHeard = row.dataset.received;
      }
      if (!document.getElementById(row.id)) fresh.push(row);
    });
    if (!fresh.length) return;
    if (paused || !atTop()) {
      buffered.push(fresh);
      bufferedCount += fresh.length;
      showNewBar();
    } else {
      insert(fresh);
    }
  }

  function insert(rows) {
    var container = document.getElementById("rows");
    if (!container) return;
    var first = container.firstElementChild;
    rows.forEach(function (row) {
      row.classList.add("fresh");
      container.insertBefore(row, first);
    });
    var empty = document.getElementById("empty");
    if (empty) empty.hidden = true;
    var total = document.querySelector(".summary .total b");
    if (total && rows.length && !total.title) { // an estimated total ("about …") stays as it is
      var n = parseInt(total.textContent.replace(/,/g, ""), 10) || 0;
      total.textContent = (n + rows.length).toLocaleString("en-US");
    }
    countInHistogram(rows);
  }

  // --- the histogram follows live rows (at most once a second) -----------------------------------
  // The same geometry as events/histogram.py: bars stacked bottom up in severity order, the peak
  // bar TOP high, a severity with any events at least MIN_SEGMENT high.
  var HEIGHT = 40, TOP = 38, MIN_SEGMENT = 1.4;
  var SEVERITIES = ["failed", "cancelled", "running", "completed", "other"];
  var SVG_NS = "http://www.w3.org/2000/svg";
  var histPending = [];
  var histTimer = null;

  function countInHistogram(rows) {
    rows.forEach(function (row) {
      var time = row.querySelector("time.ev-time");
      if (time) histPending.push([Date.parse(time.getAttribute("datetime")), row.dataset.severity]);
    });
    if (!histTimer) histTimer = setTimeout(applyHistogram, 1000);
  }

  function barCounts(bar) { return (bar.dataset.counts || "0,0,0,0,0").split(",").map(Number); }

  function barFor(svg, bars, at) {
    for (var i = bars.length - 1; i >= 0; i--) {
      var start = Date.parse(bars[i].dataset.start), end = Date.parse(bars[i].dataset.end);
      if (at >= start && at < end) return bars[i];
    }
    // An empty bucket has no bar: draw one if the bucket is inside the histogram.
    var last = bars[bars.length - 1];
    if (!last) return null;
    var unit = Date.parse(last.dataset.end) - Date.parse(last.dataset.start);
    var lastX = Number(last.querySelector(".hit").getAttribute("x"));
    var steps = Math.floor((at - Date.parse(last.dataset.start)) / unit);
    var x = lastX + steps;
    var width = svg.viewBox.baseVal ? svg.viewBox.baseVal.width : 0;
    if (steps <= 0 || x >= width) return null;
    var bar = document.createElementNS(SVG_NS, "a");
    var start = new Date(Date.parse(last.dataset.start) + steps * unit);
    bar.dataset.start = start.toISOString();
    bar.dataset.end = new Date(start.getTime() + unit).toISOString();
    bar.dataset.counts = "0,0,0,0,0";
    bar.setAttribute("tabindex", "-1");
    var hit = document.createElementNS(SVG_NS, "rect");
    hit.setAttribute("class", "hit");
    hit.setAttribute("x", x);
    hit.setAttribute("y", "0");
    hit.setAttribute("width", "1");
    hit.setAttribute("height", "40");
    bar.appendChild(hit);
    last.after(bar);
    return bar;
  }

  function drawBar(bar, peak) {
    var counts = barCounts(bar);
    var x = bar.querySelector(".hit").getAttribute("x");
    var heights = counts.map(function (n) { return n ? Math.max(MIN_SEGMENT, TOP * n / peak) : 0; });
    var sum = heights.reduce(function (a, b) { return a + b; }, 0);
    if (sum > TOP) heights = heights.map(function (h) { return h * TOP / sum; });
    bar.querySelectorAll("rect.seg").forEach(function (r) { r.remove(); });
    var y = HEIGHT;
    heights.forEach(function (h, i) {
      if (!h) return;
      y -= h;
      var seg = document.createElementNS(SVG_NS, "rect");
      seg.setAttribute("class", "seg s-" + SEVERITIES[i]);
      seg.setAttribute("x", x);
      seg.setAttribute("y", y.toFixed(2));
      seg.setAttribute("width", "0.82");
      seg.setAttribute("height", h.toFixed(2));
      bar.appendChild(seg);
    });
  }

  function applyHistogram() {
    histTimer = null;
    var pending = histPending;
    histPending = [];
    var svg = document.querySelector("svg.histogram");
    if (!svg) return;
    var changed = [];
    pending.forEach(function (item) {
      var bars = Array.prototype.slice.call(svg.querySelectorAll("a[data-start]"));
      var bar = barFor(svg, bars, item[0]);
      if (!bar) return;
      var counts = barCounts(bar);
      var index = SEVERITIES.indexOf(item[1]);
      counts[index < 0 ? SEVERITIES.length - 1 : index] += 1;
      bar.dataset.counts = counts.join(",");
      if (changed.indexOf(bar) < 0) changed.push(bar);
    });
    if (!changed.length) return;
    var all = svg.querySelectorAll("a[data-start]");
    var peak = 0;
    all.forEach(function (bar) {
      peak = Math.max(peak, barCounts(bar).reduce(function (a, b) { return a + b; }, 0));
    });
    var oldPeak = Number(svg.dataset.peak || 0);
    svg.dataset.peak = peak;
    // A new peak rescales every bar; otherwise only the bars that grew change.
    (peak !== oldPeak ? Array.prototype.slice.call(all) : changed).forEach(function (bar) {
      drawBar(bar, peak);
    });
    var axisPeak = document.querySelector(".hist .axis [data-peak]");
    if (axisPeak) axisPeak.textContent = peak.toLocaleString("en-US");
  }

  function flush() {
    // Frames arrived oldest first; each frame is newest first.
    var rows = [];
    for (var i = buffered.length - 1; i >= 0; i--) rows = rows.concat(buffered[i]);
    rows = rows.filter(function (r) { return !document.getElementById(r.id); });
    buffered = [];
    bufferedCount = 0;
    showNewBar();
    insert(rows);
  }

  function showNewBar() {
    var bar = document.getElementById("new-bar");
    if (!bar) return;
    bar.hidden = bufferedCount === 0;
    bar.textContent = bufferedCount + " new event" + (bufferedCount === 1 ? "" : "s") +
      (paused ? " · paused, click to show" : " · click to show");
  }

  function setPaused(value) {
    paused = value;
    var button = document.getElementById("pause");
    if (button) {
      button.textContent = paused ? "Resume" : "Pause";
      button.setAttribute("aria-pressed", paused ? "true" : "false");
    }
    if (socket && socket.readyState === 1) setState(paused ? "paused" : "live", paused ? "paused" : "live");
    if (!paused && atTop()) flush();
  }

  // A filter change swaps #feed-main: follow the new query with a fresh socket.
  function syncSocket() {
    var el = main();
    if (!el) { disconnect(); return; }
    setPaused(paused);
    if (el.dataset.wsQuery !== socketQuery || !socket) {
      buffered = [];
      bufferedCount = 0;
      lastHeard = el.dataset.liveAfter;
      disconnect();
      connect();
    }
    showNewBar();
  }

  window.addEventListener("scroll", function () {
    if (!paused && bufferedCount && atTop()) flush();
  }, { passive: true });

  // --- clicks and keys (delegated, so swapped content needs no re-binding) ----------------------
  document.addEventListener("click", function (e) {
    var target = e.target;
    if (target.closest("#pause")) { setPaused(!paused); return; }
    if (target.closest("#new-bar")) {
      if (paused) setPaused(false);
      window.scrollTo({ top: 0 });
      flush();
      return;
    }
    var dismiss = target.closest(".toast [data-dismiss]");
    if (dismiss) { dismiss.closest(".toast").remove(); return; }
    var copy = target.closest("[data-copy], [data-copy-target]");
    if (copy) {
      var text = copy.dataset.copy;
      if (text === undefined) {
        var source = document.getElementById(copy.dataset.copyTarget);
        text = source ? source.textContent : "";
      }
      copyText(text, copy);
    }
  });

  document.addEventListener("change", function (e) {
    var form = e.target.form;
    if (!form || form.id !== "filters") return;
    if (e.target.id === "range") {
      if (e.target.value) {
        // A preset replaces a custom window.
        form.querySelectorAll("input[name=since], input[name=until]").forEach(function (i) { i.value = ""; });
        form.requestSubmit();
      } else {
        var custom = document.getElementById("custom-range");
        if (custom) custom.open = true;
      }
    }
  });

  document.addEventListener("input", function (e) {
    if (!e.target.classList.contains("picker-search")) return;
    var needle = e.target.value.trim().toLowerCase();
    var list = e.target.closest(".picker").querySelectorAll(".picker-list li[data-value]");
    list.forEach(function (li) {
      li.hidden = needle !== "" && li.dataset.value.toLowerCase().indexOf(needle) === -1;
    });
  });

  document.addEventListener("keydown", function (e) {
    var search = document.getElementById("q");
    var typing = /^(INPUT|TEXTAREA|SELECT)$/.test(e.target.tagName) || e.target.isContentEditable;
    if (e.key === "/" && !typing && search && !e.ctrlKey && !e.metaKey && !e.altKey) {
      e.preventDefault();
      search.focus();
      search.select();
    } else if (e.key === "Escape" && e.target === search) {
      var applied = new URLSearchParams(location.search).get("q");
      search.value = "";
      search.blur();
      if (applied) search.form.requestSubmit();
    } else if (e.key === "Escape") {
      document.querySelectorAll("details.menu[open]").forEach(function (d) { d.open = false; });
    }
  });

  // The feed's filters fold behind one button on a phone and stay open on a wider screen; the
  // template closes the fold before the first paint on a phone (see events/feed.html).
  var narrow = window.matchMedia("(max-width: 700px)");
  function syncFold() {
    var fold = document.getElementById("filter-fold");
    if (fold && !narrow.matches) fold.open = true;
  }
  if (narrow.addEventListener) narrow.addEventListener("change", syncFold);

  // Close an open dropdown when clicking elsewhere.
  document.addEventListener("click", function (e) {
    document.querySelectorAll("details.menu[open]").forEach(function (d) {
      if (!d.contains(e.target)) d.open = false;
    });
  });

  function copyText(text, button) {
    function done() { toast("Copied", "copied"); }
    if (navigator.clipboard && window.isSecureContext) {
      navigator.clipboard.writeText(text).then(done, function () { fallbackCopy(text) && done(); });
    } else if (fallbackCopy(text)) {
      done();
    }
  }

  function fallbackCopy(text) {
    var area = document.createElement("textarea");
    area.value = text;
    area.setAttribute("readonly", "");
    area.style.position = "fixed";
    area.style.opacity = "0";
    document.body.appendChild(area);
    area.select();
    var ok = false;
    try { ok = document.execCommand("copy"); } catch (e) { ok = false; }
    area.remove();
    return ok;
  }

  function toast(text, kind) {
    var box = document.querySelector(".toasts");
    if (!box) {
      box = document.createElement("div");
      box.className = "toasts";
      document.body.appendChild(box);
    }
    var item = document.createElement("div");
    item.setAttribute("role", "status");
    item.className = "toast " + (kind || "");
    var span = document.createElement("span");
    span.textContent = text;
    item.appendChild(span);
    box.appendChild(item);
    setTimeout(function () { item.remove(); }, 1800);
  }

  // --- relative times ---------------------------------------------------------------------------
  function ago(iso) {
    var seconds = (Date.now() - Date.parse(iso)) / 1000;
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

  function refreshTimes() {
    // Clock times (time.ev-time) are pages.js's; only relative ones change here.
    document.querySelectorAll("[data-relative][datetime]").forEach(function (t) {
      t.textContent = ago(t.getAttribute("datetime"));
    });
  }
  setInterval(refreshTimes, 15000);

  // --- start --------------------------------------------------------------------------------------
  // Cheap when nothing changed (a "load more" swap): it only reconnects for a new query.
  document.addEventListener("htmx:afterSettle", syncSocket);
  document.addEventListener("htmx:historyRestore", syncSocket);
  window.addEventListener("pageshow", function (e) { if (e.persisted) syncSocket(); });

  function start() {
    refreshTimes();
    if (main()) connect();
  }
  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", start);
  else start();
})();
