// Job cards between two answers of the page's one poll (#job-poll, htmx;
// generations/polling.py): its request names every active card with its
// version (data-stamp) and, on the playground, the newest card's creation
// (data-created: newer jobs of this user come too); a hidden tab skips it.
// The elapsed time and the "retrying in N s" countdown tick here, unasked.
(function () {
  "use strict";
  document.addEventListener("htmx:configRequest", function (e) {
    if (e.detail.elt.id !== "job-poll") return;
    if (document.hidden) { e.preventDefault(); return; } // asked again a second after it shows
    var cards = document.querySelectorAll("article.job[data-stamp]"), top = document.querySelector("#jobs > article.job");
    e.detail.parameters.c = Array.prototype.map.call(cards, function (c) { return c.id.slice(4) + ":" + c.dataset.stamp; });
    if (top) e.detail.parameters.since = top.dataset.created;
  });

  function duration(s) { // as the card renders it (templatetags/playground.py duration)
    var m = Math.floor(s / 60), pad = function (n) { return (n < 10 ? "0" : "") + n; };
    if (s < 1) return "<1s";
    if (s < 60) return s + "s";
    return m < 60 ? m + "m " + pad(s % 60) + "s" : Math.floor(m / 60) + "h " + pad(m % 60) + "m";
  }
  function since(el) { // seconds since this element was rendered (a swapped card is a new element)
    if (el.shownAt === undefined) el.shownAt = Date.now();
    return (Date.now() - el.shownAt) / 1000;
  }
  function tick() {
    document.querySelectorAll("article.job[data-stamp] [data-elapsed]").forEach(function (el) {
      el.textContent = duration(Math.floor(parseInt(el.dataset.elapsed, 10) + since(el)));
    });
    document.querySelectorAll("article.job[data-stamp] [data-due-in]").forEach(function (el) {
      var left = Math.round(parseInt(el.dataset.dueIn, 10) - since(el));
      el.textContent = el.textContent.replace(/retrying (in \d+ s|now)$/, left >= 1 ? "retrying in " + left + " s" : "retrying now");
    });
  }
  tick();
  setInterval(tick, 1000);
})();
