// The one lightbox (templates/_lightbox.html: a modal <dialog>), on the
// gallery and the compare grid. A click on a link marked data-lightbox opens
// the full image of its item (the closest element with data-full) with the
// item's data-caption, data-meta and data-detail link. Left/Right, the
// buttons and a swipe move through the page's links; past the last one, a
// link marked data-lightbox-more (the gallery's "Older") loads more first.
// Esc (the dialog's own), Close or a click outside the image close it, and
// focus goes back to the link. An item with data-blurred stays blurred until
// its .reveal-toggle is checked (Reveal here checks it). Without JS each link
// opens its own page. Links swapped in by htmx are found at each step.
(function () {
  "use strict";
  var box, index = -1, opener = null, pendingNext = false;

  function q(sel) { return box.querySelector(sel); }
  function links() { return Array.prototype.slice.call(document.querySelectorAll("a[data-lightbox]")); }
  function item(link) { return link.closest("[data-full]"); }
  function more() { return document.querySelector("[data-lightbox-more]"); }
  function blurred(it) {
    var toggle = it.querySelector(".reveal-toggle");
    return !!it.dataset.blurred && !(toggle && toggle.checked);
  }

  function show(i) {
    var list = links();
    if (!list.length) return;
    index = Math.max(0, Math.min(i, list.length - 1));
    var it = item(list[index]), img = q(".lb-img"), detail = q(".lb-detail");
    img.src = it.dataset.full;
    img.alt = it.dataset.caption || "";
    img.classList.toggle("lb-blur", blurred(it));
    q(".lb-reveal").hidden = !blurred(it);
    q(".lb-caption").textContent = it.dataset.caption || "";
    q(".lb-meta").textContent = it.dataset.meta || "";
    detail.hidden = !it.dataset.detail;
    detail.href = it.dataset.detail || "#";
    q(".lb-pos").textContent = (index + 1) + " of " + list.length + (more() ? "+" : "");
    q(".lb-prev").disabled = index === 0;
    q(".lb-next").disabled = index === list.length - 1 && !more();
  }

  function next() {
    if (index < links().length - 1) return show(index + 1);
    var link = more();
    if (!link || !window.htmx) return;
    // The link's own request (as when scrolled to), unless already on its
    // way: the next page swaps in, then (htmx:afterSettle) the box moves on.
    pendingNext = true;
    if (!link.classList.contains("htmx-request")) window.htmx.ajax("GET", link.getAttribute("href"), { source: link });
  }
  function prev() { if (index > 0) show(index - 1); }

  function init() {
    box = document.getElementById("lightbox");
    if (!box || box.dataset.bound) return;
    box.dataset.bound = "1";
    document.addEventListener("click", function (e) {
      var link = e.target.closest && e.target.closest("a[data-lightbox]");
      if (!link || e.ctrlKey || e.metaKey || e.shiftKey || e.button !== 0) return;
      e.preventDefault();
      opener = link;
      show(links().indexOf(link));
      box.showModal();
      q(".lb-close").focus();
    });
    box.addEventListener("close", function () {
      pendingNext = false;
      q(".lb-img").removeAttribute("src");
      if (opener && document.contains(opener)) opener.focus();
      opener = null;
    });
    document.addEventListener("htmx:afterSettle", function () {
      if (!box.open) return;
      if (pendingNext && index < links().length - 1) { pendingNext = false; show(index + 1); }
      else show(index); // more links loaded, or the grid polled: the counter and Next follow
    });
    q(".lb-next").addEventListener("click", next);
    q(".lb-prev").addEventListener("click", prev);
    q(".lb-reveal").addEventListener("click", function () {
      var toggle = item(links()[index]).querySelector(".reveal-toggle");
      if (toggle) toggle.checked = true;
      show(index);
      q(".lb-close").focus();
    });
    box.addEventListener("click", function (e) {
      if (e.target === box || e.target.classList.contains("lb-frame")) box.close();
    });
    document.addEventListener("keydown", function (e) {
      if (!box.open) return;
      if (e.key === "ArrowRight") { e.preventDefault(); next(); }
      else if (e.key === "ArrowLeft") { e.preventDefault(); prev(); }
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
  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", init);
  else init();
})();
