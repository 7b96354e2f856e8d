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

  // Pickers (the namespace field): as the reader types, ask the server for the first
  // names that start with it and put them in the field's datalist. Without this the field
  // is a plain text filter with the server's first suggestions.
  for (const input of document.querySelectorAll("input[data-suggest]")) {
    const list = document.getElementById(input.getAttribute("list") || "");
    if (!list) continue;
    let asked = input.value.trim();
    let timer = 0;
    input.addEventListener("input", () => {
      clearTimeout(timer);
      timer = setTimeout(async () => {
        const prefix = input.value.trim().toLowerCase();
        if (prefix === asked) return;
        asked = prefix;
        const url = new URL(input.getAttribute("data-suggest") || "", window.location.href);
        url.searchParams.set("prefix", prefix);
        try {
          const resp = await fetch(url, { headers: { Accept: "application/json" }, credentials: "same-origin" });
          // A name no namespace can start with (400) leaves the last suggestions up.
          if (!resp.ok || asked !== prefix) return;
          const body = await resp.json();
          list.replaceChildren(...body.namespaces.map((name) => {
            const option = document.createElement("option");
            option.value = name;
            return option;
          }));
          list.setAttribute("data-prefix", prefix);
        } catch {
          // Offline or the server went away: the field still filters as typed.
        }
      }, 150);
    });
  }

  // Live job progress: every element with data-poll (a job still queued or running) asks
  // the API for its job once a second and moves its <progress>. The server-rendered page
  // stays correct without this; a reload shows the same numbers.
  const TERMINAL = new Set(["succeeded", "failed", "cancelled"]);
  const size = (n) => {
    const units = ["B", "KB", "MB", "GB", "TB"];
    let v = Number(n) || 0;
    let i = 0;
    while (Math.abs(v) >= 1000 && i < units.length - 1) { v /= 1000; i += 1; }
    return i === 0 ? `${v.toFixed(0)} ${units[i]}` : `${v.toFixed(1)} ${units[i]}`;
  };
  // Same words as registry/web/job_pages.py progress_text().
  const progressText = (job) => {
    const parts = [`${Math.round((job.progress || 0) * 100)}%`];
    const st = job.status || {};
    if (st.shards_total) {
      const shard = Math.min((st.shards_done || 0) + 1, st.shards_total);
      parts.push(`shard ${shard} of ${st.shards_total}`);
    }
    if (job.state === "running") {
      if (st.rate_bytes_s) parts.push(`${size(st.rate_bytes_s)}/s`);
      if (st.eta_s !== undefined && st.eta_s !== null) parts.push(`about ${Math.round(st.eta_s)} s left`);
      else if (st.phase) parts.push(st.phase);
    }
    return parts.join(" · ");
  };

  // One request a second per job; a page with many live jobs slows down instead.
  const boxes = document.querySelectorAll("[data-poll]");
  const every = 1000 * Math.max(1, Math.ceil(boxes.length / 10));
  for (const box of boxes) {
    const url = box.getAttribute("data-poll");
    const bar = box.querySelector("progress");
    const text = box.querySelector("[data-progress-text]");
    const row = box.closest("[data-job]") || document;
    const stateBadge = row.querySelector("[data-job-state]");
    let failures = 0;
    let lastState = stateBadge ? stateBadge.textContent.trim() : "";

    const apply = (job) => {
      if (bar) {
        bar.value = job.progress || 0;
        bar.textContent = `${Math.round((job.progress || 0) * 100)}%`;
      }
      if (text) text.textContent = progressText(job);
      if (stateBadge && job.state !== lastState) {
        stateBadge.textContent = job.state;
        stateBadge.className = `badge job-${job.state}`;
        announce(`Job ${job.id} is ${job.state}`);
      }
      lastState = job.state;
    };

    const tick = async () => {
      if (document.hidden) { setTimeout(tick, every); return; }
      try {
        const resp = await fetch(url, { headers: { Accept: "application/json" }, credentials: "same-origin" });
        if (!resp.ok) throw new Error(`HTTP ${resp.status}`);
        const job = await resp.json();
        failures = 0;
        apply(job);
        if (TERMINAL.has(job.state)) {
          // The job page shows the output and result only server-side: draw it once more.
          if (document.querySelector("[data-reload-when-done]")) window.location.reload();
          return;
        }
      } catch {
        failures += 1;
        if (failures >= 5) {
          if (text) text.textContent += " · live updates paused (reload to retry)";
          return;
        }
      }
      setTimeout(tick, every);
    };
    setTimeout(tick, every);
  }
});
