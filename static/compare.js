// Compare grid: a lightbox over the cell images (left/right keys step
// through them), and a slider overlay comparing two cells at the same spot.
// Event delegation: the grid's cells are replaced by polling.
(function () {
  "use strict";
  var current = -1;

  function links() {
    return Array.prototype.slice.call(document.querySelectorAll("#compare-grid .compare-enlarge"));
  }

  function show(i) {
    var all = links();
    var box = document.getElementById("compare-lightbox");
    if (!all.length || !box) return;
    current = (i + all.length) % all.length;
    var a = all[current];
    document.getElementById("compare-lightbox-img").src = a.dataset.full;
    document.getElementById("compare-lightbox-img").alt = a.dataset.caption || "";
    document.getElementById("compare-lightbox-caption").textContent = a.dataset.caption || "";
    if (!box.open) box.showModal();
  }

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
    var a = e.target.closest && e.target.closest(".compare-enlarge");
    if (a) {
      e.preventDefault();
      show(links().indexOf(a));
      return;
    }
    var pick = e.target.closest && e.target.closest(".compare-slide-pick");
    if (pick) {
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
    }
  });

  document.addEventListener("input", function (e) {
    if (e.target.id === "compare-slider-range") clip(Number(e.target.value));
  });

  document.addEventListener("keydown", function (e) {
    var box = document.getElementById("compare-lightbox");
    if (!box || !box.open) return;
    if (e.key === "ArrowRight") { e.preventDefault(); show(current + 1); }
    if (e.key === "ArrowLeft") { e.preventDefault(); show(current - 1); }
  });
})();
