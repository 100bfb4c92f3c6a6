// opsgate inbox: live updates by short polling, and forms posted without reloading the page.
// Plain script, no build step. Everything still works without it (forms post and redirect).
"use strict";

(function () {
  const FAST_MS = 400;     // while the agent is working or right after a decision
  const SLOW_MS = 2500;    // while waiting for people
  const FAST_WINDOW_MS = 15000;
  let fastUntil = 0;
  let timer = null;

  function localTimes(root) {
    root.querySelectorAll("time[datetime]").forEach(function (el) {
      const at = new Date(el.getAttribute("datetime"));
      if (!isNaN(at)) {
        el.title = el.textContent;
        el.textContent = at.toLocaleString([], { dateStyle: "medium", timeStyle: "medium" });
      }
    });
  }

  function flash(message) {
    const el = document.getElementById("flash");
    if (!el) { window.alert(message); return; }
    el.textContent = message || "";
    el.hidden = !message;
  }

  // A refused edit: each problem beside its field (in plain words, from the server), the first one in view.
  // Returns false when there is nothing to place, so the caller shows the general message instead.
  function showFieldErrors(form, fields) {
    form.querySelectorAll(".field-error").forEach(function (el) { el.hidden = true; el.textContent = ""; });
    form.querySelectorAll("[aria-invalid]").forEach(function (el) { el.removeAttribute("aria-invalid"); });
    form.querySelectorAll(".field.invalid").forEach(function (el) { el.classList.remove("invalid"); });
    let first = null;
    Object.entries(fields || {}).forEach(function ([name, message]) {
      const input = form.querySelector('[name="arg.' + CSS.escape(name) + '"]');
      const note = form.querySelector("#err-" + CSS.escape(name));
      if (!input || !note) { return; }
      note.textContent = message;
      note.hidden = false;
      input.setAttribute("aria-invalid", "true");
      input.setAttribute("aria-describedby", note.id);
      note.closest(".field").classList.add("invalid");
      first = first || input;
    });
    if (!first) { return false; }
    flash("");
    first.scrollIntoView({ block: "center" });
    first.focus({ preventScroll: true });
    return true;
  }

  async function getJSON(url) {
    const response = await fetch(url, { headers: { "X-Requested-With": "fetch" }, credentials: "same-origin" });
    if (response.status === 401) { flash("You are logged out; reload the page to log in again."); return null; }
    if (!response.ok) { return null; }
    return response.json();
  }

  function schedule(poll, status) {
    clearTimeout(timer);
    const fast = status === "running" || Date.now() < fastUntil;
    timer = setTimeout(poll, document.hidden ? SLOW_MS * 2 : (fast ? FAST_MS : SLOW_MS));
  }

  function liveThread(live) {
    const composer = document.getElementById("composer");
    let status = (live.querySelector("[data-status]") || {}).dataset?.status;
    async function poll() {
      try {
        const url = live.dataset.liveUrl + "?seq=" + encodeURIComponent(live.dataset.seq);
        const data = await getJSON(url);
        if (data) {
          status = data.status;
          if (data.changed) {
            live.innerHTML = data.html;
            live.dataset.seq = data.seq;
            localTimes(live);
            if (composer) { composer.hidden = status === "waiting_for_approval"; }
          }
        }
      } catch (err) {
        // The server may be restarting; keep trying at the slow pace.
      }
      schedule(poll, status);
    }
    live.pollNow = function () { fastUntil = Date.now() + FAST_WINDOW_MS; clearTimeout(timer); poll(); };
    schedule(poll, status);
  }

  function liveList(live) {
    async function poll() {
      try {
        const sep = live.dataset.liveUrl.includes("?") ? "&" : "?";
        const data = await getJSON(live.dataset.liveUrl + sep + "v=" + encodeURIComponent(live.dataset.version));
        if (data && data.changed) {
          live.innerHTML = data.html;
          live.dataset.version = data.version;
          localTimes(live);
        }
      } catch (err) { /* retry at the next tick */ }
      schedule(poll, null);
    }
    schedule(poll, null);
  }

  document.addEventListener("submit", async function (event) {
    const form = event.target;
    if (!(form instanceof HTMLFormElement) || !form.hasAttribute("data-live")) { return; }
    event.preventDefault();
    const buttons = Array.from(form.querySelectorAll("button")).filter(function (b) { return !b.disabled; });
    buttons.forEach(function (b) { b.disabled = true; });
    try {
      const response = await fetch(form.action, {
        method: "POST",
        body: new FormData(form),
        headers: { "X-Requested-With": "fetch" },
        credentials: "same-origin",
      });
      const data = await response.json().catch(function () { return { ok: false, error: "unexpected answer (" + response.status + ")" }; });
      if (data.ok) {
        flash("");
        if (data.redirect && data.redirect !== window.location.pathname) { window.location.assign(data.redirect); return; }
        const textarea = form.querySelector("textarea[name=text]");
        if (textarea) { textarea.value = ""; }
      } else if (!showFieldErrors(form, data.fields)) {
        flash(data.error || "that did not work");
      }
    } catch (err) {
      flash("Could not reach opsgate: " + err);
    } finally {
      buttons.forEach(function (b) { b.disabled = false; });
      const live = document.getElementById("live");
      if (live && live.pollNow) { live.pollNow(); }
    }
  });

  document.addEventListener("DOMContentLoaded", function () {
    localTimes(document);
    const thread = document.getElementById("live");
    if (thread) { liveThread(thread); }
    const list = document.getElementById("live-list");
    if (list) { liveList(list); }
  });
})();
