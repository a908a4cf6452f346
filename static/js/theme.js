/* The theme switch in the user menu: light, dark or the system's, remembered in localStorage.
   base.html's inline head script applies a stored choice before the first paint; this file only
   shows the switch (it needs JavaScript) and keeps <html data-theme> and the buttons in step. */
(function () {
  "use strict";
  var KEY = "eventsite.theme";

  function stored() {
    try { return localStorage.getItem(KEY) || "system"; } catch (e) { return "system"; }
  }

  function apply(choice) {
    var root = document.documentElement;
    if (choice === "light" || choice === "dark") root.dataset.theme = choice;
    else delete root.dataset.theme;
    document.querySelectorAll("[data-theme-choice]").forEach(function (button) {
      button.setAttribute("aria-pressed", button.dataset.themeChoice === choice ? "true" : "false");
    });
  }

  document.addEventListener("click", function (e) {
    var button = e.target.closest("[data-theme-choice]");
    if (!button) return;
    var choice = button.dataset.themeChoice;
    try {
      if (choice === "system") localStorage.removeItem(KEY);
      else localStorage.setItem(KEY, choice);
    } catch (err) { /* storage refused (private mode): the choice lasts for this page */ }
    apply(choice);
  });

  // A choice made in another tab applies here too.
  window.addEventListener("storage", function (e) { if (e.key === KEY) apply(stored()); });

  function start() {
    document.querySelectorAll("[data-theme-switch]").forEach(function (el) { el.hidden = false; });
    apply(stored());
  }
  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", start);
  else start();
})();
