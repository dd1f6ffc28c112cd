// Job cards: one polling request per page for all its active cards
// (generations/polling.py). Every second while the page shows an active card
// (data-stamp: the job's version), every few seconds on the playground for
// jobs started elsewhere, not at all otherwise. Changed cards come back with
// hx-swap-oob and htmx swaps them; new cards go on top of the job column.
// Between answers the page ticks the elapsed time and the "retrying in N s"
// countdown itself. No inline script or handler: the page's CSP allows 'self'.
(function () {
  "use strict";

  var ACTIVE_MS = 1000; // an active card on the page
  var IDLE_MS = 5000; // the playground with no active card: new jobs only
  var timer = null;
  var nextAt = 0;
  var inFlight = false;

  function activeCards() {
    return document.querySelectorAll("article.job[data-stamp]");
  }
  function column() {
    return document.querySelector("#jobs[data-poll-new]");
  }
  function pollUrl() {
    var el = document.querySelector("[data-poll-url]");
    return el ? el.dataset.pollUrl : null;
  }

  function delay() {
    if (activeCards().length) return ACTIVE_MS;
    if (column()) return IDLE_MS;
    return 0; // nothing to ask about: polling stops
  }

  function schedule(ms) {
    if (ms === undefined) ms = delay();
    if (!ms) {
      if (timer) clearTimeout(timer);
      timer = null;
      return;
    }
    var at = Date.now() + ms;
    if (timer && nextAt <= at) return; // already due sooner
    if (timer) clearTimeout(timer);
    nextAt = at;
    timer = setTimeout(function () { timer = null; poll(); }, ms);
  }

  function query() {
    var params = new URLSearchParams();
    activeCards().forEach(function (card) {
      params.append("c", card.id.slice(4) + ":" + card.dataset.stamp);
    });
    var col = column();
    if (col) {
      var newest = col.querySelector(":scope > article.job[data-created]");
      if (newest) params.set("since", newest.dataset.created);
      else params.set("new", "1");
    }
    return params;
  }

  function insertNew(box) {
    var col = column();
    if (!col) return;
    var cards = Array.prototype.filter.call(box.children, function (c) {
      // Skip a card already here (e.g. submitted from this page meanwhile).
      return c.id && c.id.indexOf("job-") === 0 && !document.getElementById(c.id);
    });
    if (cards.length) {
      var empty = col.querySelector(":scope > .empty");
      if (empty) empty.remove();
    }
    cards.reverse().forEach(function (card) {
      col.insertAdjacentElement("afterbegin", card);
      if (window.htmx) window.htmx.process(card);
    });
  }

  function apply(html) {
    var tpl = document.createElement("template");
    tpl.innerHTML = html;
    tpl.content.querySelectorAll("[data-new-jobs]").forEach(function (box) {
      insertNew(box);
      box.remove();
    });
    var rest = document.createElement("div");
    rest.appendChild(tpl.content);
    if (!rest.children.length) return;
    if (window.htmx) {
      // Changed cards: hx-swap-oob="true", swapped by id.
      window.htmx.swap(document.body, rest.innerHTML, { swapStyle: "none" });
    }
  }

  function poll() {
    var url = pollUrl();
    if (!url || inFlight) return;
    if (document.hidden) { schedule(); return; } // a hidden tab asks again when shown
    var params = query();
    if (!params.toString()) { schedule(); return; }
    inFlight = true;
    fetch(url + "?" + params.toString(), {
      headers: { "HX-Request": "true", "HX-Current-URL": location.href },
      credentials: "same-origin"
    })
      .then(function (r) {
        if (r.headers.get("HX-Refresh") === "true") { location.reload(); return ""; }
        return r.status === 200 ? r.text() : "";
      })
      .then(function (html) { if (html) apply(html); })
      .catch(function () { /* offline for a moment: the next tick tries again */ })
      .then(function () { inFlight = false; schedule(); });
  }

  // --- Ticking between answers ------------------------------------------------
  function duration(seconds) {
    // As the card renders it (templatetags/playground.py duration).
    if (seconds < 1) return "<1s";
    if (seconds < 60) return seconds + "s";
    var minutes = Math.floor(seconds / 60);
    seconds = seconds % 60;
    if (minutes < 60) return minutes + "m " + (seconds < 10 ? "0" : "") + seconds + "s";
    var hours = Math.floor(minutes / 60);
    minutes = minutes % 60;
    return hours + "h " + (minutes < 10 ? "0" : "") + minutes + "m";
  }
  function since(el) {
    // Seconds since this element was rendered (a swapped card is a new element).
    if (el.pollBase === undefined) el.pollBase = Date.now();
    return (Date.now() - el.pollBase) / 1000;
  }
  function tick() {
    document.querySelectorAll("article.job[data-stamp] [data-elapsed]").forEach(function (el) {
      el.textContent = duration(Math.floor(parseInt(el.dataset.elapsed, 10) + since(el)));
    });
    document.querySelectorAll("article.job[data-stamp] [data-due-in]").forEach(function (el) {
      var left = Math.round(parseInt(el.dataset.dueIn, 10) - since(el));
      var when = left >= 1 ? "retrying in " + left + " s" : "retrying now";
      el.textContent = el.textContent.replace(/retrying (in \d+ s|now)$/, when);
    });
  }

  function start() {
    tick();
    setInterval(tick, 1000);
    schedule();
    document.addEventListener("visibilitychange", function () { if (!document.hidden) schedule(1); });
    // A card added or swapped by htmx (a job created from the form, a
    // canceled one): poll again at the right pace.
    document.addEventListener("htmx:afterSettle", function () { schedule(); });
  }

  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", start);
  else start();
})();
