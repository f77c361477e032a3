// Scalefog console: small conveniences on top of pages that work without JavaScript.
// - [data-copy] buttons (hidden without JS) copy their text to the clipboard.
// - An input with [data-confirm-for] enables its delete button only once the expected name
//   is typed; the server checks the name anyway.
"use strict";
document.addEventListener("DOMContentLoaded", () => {
  for (const btn of document.querySelectorAll("button[data-copy]")) {
    btn.hidden = false;
    btn.addEventListener("click", async () => {
      const text = btn.getAttribute("data-copy");
      const label = btn.textContent;
      try {
        await navigator.clipboard.writeText(text);
        btn.textContent = "Copied";
      } catch (_) {
        // Clipboard refused (plain http on another host): select the text for Ctrl+C instead.
        const field = btn.parentElement.querySelector("input, pre");
        if (field && field.select) { field.focus(); field.select(); }
        btn.textContent = "Press Ctrl+C";
      }
      btn.classList.add("copied");
      setTimeout(() => { btn.textContent = label; btn.classList.remove("copied"); }, 1800);
    });
  }
  for (const input of document.querySelectorAll("input[data-confirm-for]")) {
    const button = document.getElementById(input.getAttribute("data-confirm-for"));
    const expected = input.getAttribute("data-expected");
    if (!button) continue;
    const sync = () => { button.disabled = input.value.trim() !== expected; };
    input.addEventListener("input", sync);
    sync();
  }
  // Read-only fields select all on focus, so a keyboard user can copy without a mouse.
  for (const ro of document.querySelectorAll("input[readonly]")) {
    ro.addEventListener("focus", () => ro.select());
  }
});
