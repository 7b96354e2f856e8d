// Small enhancements on top of pages that already work without JavaScript.
"use strict";

document.addEventListener("DOMContentLoaded", () => {
  const announce = (text) => {
    const region = document.getElementById("announce");
    if (region) region.textContent = text;
  };

  // "/" jumps to the search box, as on GitHub; typing in a field is left alone.
  document.addEventListener("keydown", (event) => {
    if (event.key !== "/" || event.ctrlKey || event.metaKey || event.altKey) return;
    const target = event.target;
    if (target instanceof HTMLElement && target.closest("input, select, textarea, [contenteditable]")) return;
    const search = document.getElementById("q");
    if (search) {
      event.preventDefault();
      search.focus();
      search.select();
    }
  });

  // Copy buttons for hashes and commands; only added where the clipboard API exists.
  if (navigator.clipboard) {
    for (const el of document.querySelectorAll("[data-copy]")) {
      const button = document.createElement("button");
      button.type = "button";
      button.className = "copy";
      button.textContent = "Copy";
      button.setAttribute("aria-label", "Copy " + el.getAttribute("data-copy"));
      button.addEventListener("click", async () => {
        try {
          await navigator.clipboard.writeText(el.getAttribute("data-copy") || "");
          button.textContent = "Copied";
          announce("Copied to the clipboard");
          setTimeout(() => { button.textContent = "Copy"; }, 1500);
        } catch {
          announce("Copy failed: select the text and copy it by hand");
        }
      });
      el.after(button);
    }
  }

  // Exact times in the reader's own time zone, on hover.
  for (const el of document.querySelectorAll("time[datetime]")) {
    const when = new Date(el.getAttribute("datetime") || "");
    if (!Number.isNaN(when.getTime())) el.title = when.toLocaleString();
  }
});
