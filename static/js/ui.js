// Switchboard pages: marks the page as scripted and wires the menu button of narrow screens.
// A classic script in <head>, run before the first paint, so that the navigation folds away
// under 768 px without first flashing open (without JavaScript it simply stays open).
(function () {
  "use strict";

  const root = document.documentElement;
  root.classList.remove("no-js");
  root.classList.add("js");

  function menu() {
    const button = document.querySelector("[data-menu-button]");
    const panel = button && document.getElementById(button.getAttribute("aria-controls"));
    if (!panel) return;

    const setOpen = (open) => {
      button.setAttribute("aria-expanded", String(open));
      panel.classList.toggle("is-open", open);
    };
    button.addEventListener("click", () => setOpen(button.getAttribute("aria-expanded") !== "true"));
    document.addEventListener("keydown", (event) => {
      if (event.key === "Escape" && button.getAttribute("aria-expanded") === "true") {
        setOpen(false);
        button.focus();
      }
    });
  }

  document.addEventListener("DOMContentLoaded", menu);
})();
