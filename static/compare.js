// Compare grid: a slider overlay comparing two cells at the same spot (the
// lightbox over the cell images is the shared one: static/lightbox.js).
// Event delegation: the grid's cells are replaced by polling.
(function () {
  "use strict";
  var picked = null;

  function slide(first, second) {
    var box = document.getElementById("compare-slider");
    document.getElementById("compare-slider-a").src = first;
    document.getElementById("compare-slider-b").src = second;
    var range = document.getElementById("compare-slider-range");
    range.value = 50;
    clip(50);
    box.showModal();
  }

  function clip(v) {
    var top = document.getElementById("compare-slider-b");
    if (top) top.style.clipPath = "inset(0 " + (100 - v) + "% 0 0)";
  }

  document.addEventListener("click", function (e) {
    var pick = e.target.closest && e.target.closest(".compare-slide-pick");
    if (!pick) return;
    if (picked === null || picked === pick.dataset.full) {
      picked = pick.dataset.full;
      document.querySelectorAll(".compare-slide-pick").forEach(function (b) {
        b.textContent = b.dataset.full === picked ? "Picked: now pick another" : "Slide against the picked one";
      });
    } else {
      slide(picked, pick.dataset.full);
      picked = null;
      document.querySelectorAll(".compare-slide-pick").forEach(function (b) { b.textContent = "Slide compare"; });
    }
  });

  document.addEventListener("input", function (e) {
    if (e.target.id === "compare-slider-range") clip(Number(e.target.value));
  });
})();
