// Scalefog console: small conveniences on top of pages that work without JavaScript.
// - [data-copy] buttons (hidden without JS) copy their text to the clipboard.
// - An input with [data-confirm-for] enables its delete button only once the expected name
//   is typed; the server checks the name anyway.
// - A <pre data-stream> follows server-sent events: a build's log, or the app's output
//   ([data-replace]: the stream starts with the recent lines, replacing the rendered ones).
// - While a deploy or an action runs ([data-busy]), the status badge follows the server and
//   the page reloads when it is done, showing the outcome. Without JS: a Refresh link.
// - A submit button with [data-busy-label] says what is happening while the server works.
"use strict";
document.documentElement.classList.add("js");

let reloading = false;
function reloadSoon() {
  if (reloading) return;
  reloading = true;
  setTimeout(() => window.location.reload(), 400);
}

// Keeps at most this many lines in a followed log, so a chatty app cannot exhaust the tab.
const MAX_LOG_NODES = 5000;

function follow(pre) {
  const replace = pre.hasAttribute("data-replace");
  const live = pre.closest(".terminal") && pre.closest(".terminal").querySelector(".live");
  const es = new EventSource(pre.getAttribute("data-stream"));
  let fresh = false;
  const append = (text) => {
    const atBottom = pre.scrollHeight - pre.scrollTop - pre.clientHeight < 48;
    if (fresh) {
      pre.textContent = "";
      fresh = false;
    }
    const empty = pre.querySelector(".log-empty");
    if (empty) empty.remove();
    const before = pre.textContent;
    const sep = before.length > 0 && !before.endsWith("\n") ? "\n" : "";
    pre.appendChild(document.createTextNode(sep + text + "\n"));
    while (pre.childNodes.length > MAX_LOG_NODES) pre.removeChild(pre.firstChild);
    if (atBottom) pre.scrollTop = pre.scrollHeight;
  };
  es.onopen = () => {
    // Each (re)connection of the output stream starts again from the recent lines.
    if (replace) fresh = true;
    if (live) live.hidden = false;
  };
  es.onmessage = (e) => append(e.data);
  es.addEventListener("failure", (e) => append("! " + e.data));
  es.addEventListener("done", () => {
    es.close();
    if (live) live.hidden = true;
    reloadSoon();
  });
  es.addEventListener("end", () => {
    es.close();
    if (live) live.hidden = true;
  });
  es.onerror = () => {
    if (es.readyState === EventSource.CLOSED && live) live.hidden = true;
  };
  pre.scrollTop = pre.scrollHeight;
}

function watchStatus(head) {
  const url = head.getAttribute("data-status-url");
  const badge = document.getElementById("app-status");
  const hint = document.getElementById("app-status-hint");
  const tick = async () => {
    try {
      const r = await fetch(url, { headers: { accept: "application/json" }, credentials: "same-origin" });
      if (r.ok) {
        const s = await r.json();
        if (badge) {
          badge.className = "badge badge-" + s.status;
          const label = badge.querySelector(".badge-label");
          if (label) label.textContent = s.label;
        }
        if (hint) hint.textContent = s.hint;
        if (!s.busy) {
          reloadSoon();
          return;
        }
      }
    } catch (_) {
      // Offline for a moment: try again on the next tick.
    }
    setTimeout(tick, 2000);
  };
  setTimeout(tick, 1500);
}

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
  for (const el of document.querySelectorAll(".js-only")) el.hidden = false;
  for (const pre of document.querySelectorAll("pre[data-stream]")) follow(pre);
  const head = document.querySelector("[data-status-url][data-busy]");
  if (head) watchStatus(head);
  for (const btn of document.querySelectorAll("button[data-busy-label]")) {
    btn.form.addEventListener("submit", () => {
      // After the submit event, so the form is sent; a second click cannot send it twice.
      setTimeout(() => {
        btn.disabled = true;
        btn.textContent = btn.getAttribute("data-busy-label");
      }, 0);
    });
  }
});
