// Show only the inputs that apply: a field with data-show-if='{"param": [values]}'
// is visible (and enabled) only while those parameters hold one of the values.
(function () {
  function valueOf(form, name) {
    var el = form.elements[name];
    if (!el) return undefined;
    if (el.type === "checkbox") return el.checked;
    return el.value;
  }
  function update(form) {
    form.querySelectorAll("[data-show-if]").forEach(function (box) {
      var rule = JSON.parse(box.dataset.showIf);
      var show = Object.keys(rule).every(function (name) {
        var v = valueOf(form, name);
        return rule[name].some(function (allowed) { return String(allowed) === String(v); });
      });
      box.hidden = !show;
      box.querySelectorAll("input, select, textarea").forEach(function (el) { el.disabled = !show; });
    });
  }
  function init(root) {
    root.querySelectorAll("form[data-model-form]").forEach(function (form) {
      if (form.dataset.bound) return;
      form.dataset.bound = "1";
      form.addEventListener("change", function () { update(form); });
      update(form);
    });
  }
  document.addEventListener("DOMContentLoaded", function () { init(document); });
  document.addEventListener("htmx:afterSettle", function (e) { init(document); });
})();

// "Copy" buttons next to code snippets.
document.addEventListener("click", function (e) {
  var btn = e.target.closest("[data-copy]");
  if (!btn) return;
  var code = btn.parentElement.querySelector("code");
  if (code && navigator.clipboard) {
    navigator.clipboard.writeText(code.textContent).then(function () {
      btn.textContent = "Copied";
      setTimeout(function () { btn.textContent = "Copy"; }, 1500);
    });
  }
});
