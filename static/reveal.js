// Adult results shown to anyone but their owner are blurred until the viewer
// clicks "Reveal": the link (href ?reveal=1, for no JS) just lifts the blur here.
document.addEventListener("click", function (e) {
  var link = e.target.closest("[data-reveal]");
  if (!link) return;
  var frame = link.closest(".adult-blur");
  if (!frame) return;
  e.preventDefault();
  frame.classList.add("revealed");
});
