// The playground page: keyboard submit, drafts that survive a reload, the
// first error brought into view, a remaining-characters count, a live
// estimate that follows values the browser restored. No inline script or handler: the page's CSP allows 'self' only.
(function () {
  "use strict";

  function modelForm() { return document.querySelector("form[data-model-form]"); }

  // --- Ctrl/Cmd+Enter submits (through htmx, like the button) ----------------
  document.addEventListener("keydown", function (e) {
    if (e.key !== "Enter" || !(e.ctrlKey || e.metaKey) || e.isComposing) return;
    var form = e.target.closest && e.target.closest("form[data-model-form]");
    if (!form) return;
    e.preventDefault();
    var button = form.querySelector("button[type=submit]");
    if (button && button.disabled) return; // a submit is already on its way
    form.requestSubmit();
  });

  // --- Drafts: what is being written survives a reload ----------------------
  // Every text, number, choice and checkbox of the form, kept per tab
  // (sessionStorage), per user and model; cleared once a job is created.
  var DRAFT_FIELDS = "textarea[name], input[type=text][name], input[type=number][name], " +
    "input[type=checkbox][name], select[name]:not([multiple])";
  function draftFields(form) { return form.querySelectorAll(DRAFT_FIELDS); }
  function draftKey(form) { return form.dataset.draftKey; }
  function readDraft(form) {
    try { return JSON.parse(sessionStorage.getItem(draftKey(form)) || "null"); } catch (err) { return null; }
  }
  function saveDraft(form) {
    var data = {};
    draftFields(form).forEach(function (el) { data[el.name] = el.type === "checkbox" ? el.checked : el.value; });
    try {
      sessionStorage.setItem(draftKey(form), JSON.stringify(data));
    } catch (err) { /* storage full or disabled: nothing to keep */ }
  }
  function atDefault(el) {
    if (el.type === "checkbox") return el.checked === el.defaultChecked;
    if (el.tagName === "SELECT") {
      return Array.prototype.every.call(el.options, function (o) { return o.selected === o.defaultSelected; });
    }
    return el.value === el.defaultValue;
  }
  function restoreDraft(form) {
    var query = new URLSearchParams(location.search);
    if (query.has("remix") || query.has("input")) return; // a remixed job's values, or a picked image's mode, win
    var data = readDraft(form);
    if (!data) return;
    var changed = false;
    draftFields(form).forEach(function (el) {
      if (!Object.prototype.hasOwnProperty.call(data, el.name) || !atDefault(el)) return;
      if (el.type === "checkbox") {
        if (el.checked === !!data[el.name]) return;
        el.checked = !!data[el.name];
      } else {
        if (el.value === String(data[el.name])) return;
        if (el.tagName === "SELECT" && !Array.prototype.some.call(el.options, function (o) {
          return o.value === String(data[el.name]);
        })) return; // a choice no longer offered
        el.value = data[el.name];
      }
      changed = true;
      el.dispatchEvent(new Event("input", { bubbles: true }));
    });
    // Fields that show only for some values, and the estimate, follow.
    if (changed) form.dispatchEvent(new Event("change", { bubbles: true }));
  }

  // --- Remaining characters under each limited text area ----------------------
  function counterFor(el) {
    var id = el.id + "-count";
    var out = document.getElementById(id);
    if (!out) {
      out = document.createElement("small");
      out.id = id;
      out.className = "char-count muted";
      out.setAttribute("aria-live", "polite");
      el.insertAdjacentElement("afterend", out);
      el.setAttribute("aria-describedby", ((el.getAttribute("aria-describedby") || "") + " " + id).trim());
    }
    return out;
  }
  function updateCount(el) {
    var max = parseInt(el.getAttribute("maxlength"), 10);
    if (!max || !el.id) return;
    var used = el.value.length;
    var out = counterFor(el);
    out.textContent = (max - used).toLocaleString() + " of " + max.toLocaleString() + " characters left";
    out.classList.toggle("near-limit", used > max * 0.9);
  }

  // --- The estimate follows values the browser restored on reload/back -------
  function restoredPriced(form) {
    return Array.prototype.some.call(form.querySelectorAll(".priced"), function (el) {
      if (el.type === "checkbox" || el.type === "radio") return el.checked !== el.defaultChecked;
      if (el.tagName === "SELECT") {
        return Array.prototype.some.call(el.options, function (o) { return o.selected !== o.defaultSelected; });
      }
      return el.value !== el.defaultValue;
    });
  }
  function refreshEstimate(form) {
    var est = form.querySelector("[data-estimate]");
    if (est && window.htmx && restoredPriced(form)) window.htmx.trigger(est, "refresh");
  }

  // --- Binding, on load and after htmx swaps the form ------------------------
  function bind(form) {
    if (form.dataset.playgroundBound) return;
    form.dataset.playgroundBound = "1";
    var hint = form.querySelector(".shortcut");
    if (hint && /Mac|iPhone|iPad/.test(navigator.platform || "")) hint.textContent = "or \u2318+Enter";
    form.querySelectorAll("textarea[maxlength]").forEach(updateCount);
    form.addEventListener("input", function (e) {
      if (e.target.matches("textarea[maxlength]")) updateCount(e.target);
      if (e.target.matches(DRAFT_FIELDS)) saveDraft(form);
    });
    form.addEventListener("change", function (e) { if (e.target.matches(DRAFT_FIELDS)) saveDraft(form); });
  }

  function firstError(form) {
    var box = form.querySelector(".field.has-error:not([hidden])");
    if (box) {
      return box.querySelector("textarea:not([disabled]), select:not([disabled]), input:not([type=hidden]):not([disabled])") || box;
    }
    return form.querySelector(".error");
  }

  function focusFirstError(form) {
    var el = firstError(form);
    if (!el) return;
    if (!el.matches("input, select, textarea")) el.setAttribute("tabindex", "-1");
    el.scrollIntoView({ block: "center" });
    el.focus({ preventScroll: true });
  }

  document.addEventListener("DOMContentLoaded", function () {
    var form = modelForm();
    if (!form) return;
    bind(form);
    restoreDraft(form);
    refreshEstimate(form);
    if (form.querySelector(".field.has-error")) focusFirstError(form); // a plain (no-htmx) invalid submit
  });
  // Back/forward cache: the page comes back with the browser's values.
  window.addEventListener("pageshow", function (e) {
    var form = modelForm();
    if (e.persisted && form) refreshEstimate(form);
  });

  document.addEventListener("htmx:afterSettle", function (e) {
    // Only when the whole form was swapped (not, e.g., the estimate inside it).
    if (!e.detail.elt || e.detail.elt.id !== "model-form") return;
    var form = modelForm();
    if (!form) return;
    bind(form);
    // An invalid submit re-renders the form with its errors: bring the first into view.
    if (form.querySelector(".field.has-error, .error")) focusFirstError(form);
  });

  document.addEventListener("htmx:afterRequest", function (e) {
    var form = e.detail.elt;
    if (!form.matches || !form.matches("form[data-model-form]")) return;
    var xhr = e.detail.xhr;
    // A created job (not the form sent back with errors): the draft is done.
    if (e.detail.successful && xhr && !xhr.getResponseHeader("HX-Retarget")) {
      try { sessionStorage.removeItem(draftKey(form)); } catch (err) { /* nothing kept */ }
    }
  });
  // Jobs started elsewhere (another tab) come with the page's one job poll (#job-poll, static/jobcards.js).
})();
