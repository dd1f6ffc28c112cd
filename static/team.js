// Team switcher: picking a team submits its form (no inline handler: CSP).
document.addEventListener("change", function (e) {
  var select = e.target.closest("select[data-submit-on-change]");
  if (select && select.form) select.form.requestSubmit ? select.form.requestSubmit() : select.form.submit();
});

// "Copy link" next to a pending invite; "Copy" next to a new API token.
document.addEventListener("click", function (e) {
  var btn = e.target.closest("[data-copy-invite], [data-copy-secret]");
  if (!btn) return;
  var input = btn.parentElement.querySelector("[data-invite-link], [data-secret]");
  if (!input) return;
  input.select();
  if (!btn.dataset.label) btn.dataset.label = btn.textContent;
  var done = function () {
    btn.textContent = "Copied";
    setTimeout(function () { btn.textContent = btn.dataset.label; }, 1500);
  };
  if (navigator.clipboard && window.isSecureContext) {
    navigator.clipboard.writeText(input.value).then(done, function () {});
  } else if (document.execCommand && document.execCommand("copy")) {
    done();
  }
});
