// The gallery's lightbox: a click on a card's thumbnail opens the full image
// with its prompt, model, cost and maker; Left/Right (and the buttons) move
// through the loaded cards, loading older ones at the end; Esc closes and
// gives focus back to the thumbnail. Without JS the thumbnail is a plain
// link to the generation's page. Someone else's adult result stays blurred
// here too until "Reveal" (which reveals its card as well).
(function () {
  var box, img, index = -1, opener = null, pendingNext = false;

  function cards() {
    return Array.prototype.slice.call(document.querySelectorAll("#gallery-list .gcard[data-full]"))
      .filter(function (c) { return c.dataset.full; });
  }
  function q(sel) { return box.querySelector(sel); }
  function revealed(card) {
    var t = card.querySelector(".reveal-toggle");
    return !card.dataset.blurred || (t && t.checked);
  }

  function show(i) {
    var list = cards();
    if (!list.length) return;
    index = Math.max(0, Math.min(i, list.length - 1));
    var card = list[index];
    img.src = card.dataset.full;
    img.alt = card.dataset.prompt || card.dataset.model || "";
    var blur = !revealed(card);
    img.classList.toggle("gallery-blur", blur);
    q(".lb-reveal").hidden = !blur;
    q(".lb-prompt").textContent = card.dataset.prompt || "(no prompt)";
    q(".lb-model").textContent = card.dataset.model || "";
    q(".lb-owner").textContent = "by " + (card.dataset.owner || "");
    q(".lb-cost").textContent = card.dataset.cost || "";
    q(".lb-detail").href = card.dataset.detail;
    q(".lb-pos").textContent = (index + 1) + " of " + list.length + (moreLink() ? "+" : "");
    q(".lb-prev").disabled = index === 0;
    q(".lb-next").disabled = index === list.length - 1 && !moreLink();
  }

  function moreLink() { return document.querySelector("#gallery-list .gallery-more a"); }

  function next() {
    var list = cards();
    if (index < list.length - 1) return show(index + 1);
    var more = moreLink();
    if (!more || !window.htmx) return;
    // The sentinel's own request (the same as scrolling to it), unless
    // scrolling already started it: the next page replaces the sentinel,
    // then (htmx:afterSettle) the lightbox moves on to the first new card.
    pendingNext = true;
    if (!more.classList.contains("htmx-request")) {
      window.htmx.ajax("GET", more.getAttribute("href"), { source: more, target: more.closest("li"), swap: "outerHTML" });
    }
  }
  function prev() { if (index > 0) show(index - 1); }

  function open(card, from) {
    opener = from;
    box.hidden = false;
    document.body.classList.add("lb-open");
    show(cards().indexOf(card));
    q(".lb-close").focus();
  }
  function close() {
    box.hidden = true;
    pendingNext = false;
    img.removeAttribute("src");
    document.body.classList.remove("lb-open");
    if (opener && document.contains(opener)) opener.focus();
    opener = null;
  }

  function init() {
    box = document.getElementById("lightbox");
    if (!box || box.dataset.bound) return;
    box.dataset.bound = "1";
    img = q(".lb-img");
    document.addEventListener("click", function (e) {
      var link = e.target.closest("#gallery-list .gcard .thumb");
      if (!link || e.ctrlKey || e.metaKey || e.shiftKey || e.button !== 0) return;
      var card = link.closest(".gcard");
      if (!card.dataset.full) return;  // no image (failed, running): its page
      e.preventDefault();
      open(card, link);
    });
    document.addEventListener("htmx:afterSettle", function () {
      if (box.hidden) return;
      if (pendingNext && index < cards().length - 1) { pendingNext = false; show(index + 1); }
      else show(index);  // more cards loaded: the counter and the Next button follow
    });
    q(".lb-close").addEventListener("click", close);
    q(".lb-next").addEventListener("click", next);
    q(".lb-prev").addEventListener("click", prev);
    q(".lb-reveal").addEventListener("click", function () {
      var card = cards()[index], t = card && card.querySelector(".reveal-toggle");
      if (t) t.checked = true;
      show(index);
      q(".lb-close").focus();
    });
    box.addEventListener("click", function (e) { if (e.target === box || e.target.classList.contains("lb-frame")) close(); });
    document.addEventListener("keydown", function (e) {
      if (box.hidden) return;
      if (e.key === "Escape") { e.preventDefault(); close(); }
      else if (e.key === "ArrowRight") { e.preventDefault(); next(); }
      else if (e.key === "ArrowLeft") { e.preventDefault(); prev(); }
      else if (e.key === "Tab") {
        // Focus stays inside the dialog.
        var f = Array.prototype.filter.call(box.querySelectorAll("button, a[href]"),
          function (el) { return !el.hidden && !el.disabled && el.offsetParent !== null; });
        if (!f.length) return;
        var first = f[0], last = f[f.length - 1];
        if (e.shiftKey && document.activeElement === first) { e.preventDefault(); last.focus(); }
        else if (!e.shiftKey && document.activeElement === last) { e.preventDefault(); first.focus(); }
      }
    });
    // Phones: a horizontal swipe moves too.
    var x0 = null;
    box.addEventListener("touchstart", function (e) { x0 = e.touches[0].clientX; }, { passive: true });
    box.addEventListener("touchend", function (e) {
      if (x0 === null) return;
      var dx = e.changedTouches[0].clientX - x0;
      x0 = null;
      if (Math.abs(dx) > 50) { if (dx < 0) next(); else prev(); }
    });
  }
  document.addEventListener("DOMContentLoaded", init);
  if (document.readyState !== "loading") init();
})();
