// Stella console: local times on hover, the tenant menu, SBOM files into the form, and
// live progress bars fed by the job streams (EventSource, same origin, session cookie).
"use strict";

function localTimes(root) {
  for (const el of root.querySelectorAll("time[datetime]")) {
    const at = new Date(el.getAttribute("datetime"));
    if (!isNaN(at)) el.title = at.toLocaleString() + " (local time)";
  }
}

function tenantMenu() {
  for (const select of document.querySelectorAll("select[data-autosubmit]")) {
    select.addEventListener("change", () => select.form.requestSubmit());
  }
}

function fileInputs() {
  for (const input of document.querySelectorAll("input[type=file][data-fills]")) {
    input.addEventListener("change", async () => {
      const file = input.files && input.files[0];
      if (!file) return;
      document.getElementById(input.dataset.fills).value = await file.text();
    });
  }
}

const TERMINAL = ["succeeded", "failed", "cancelled"];

function liveProgress(box) {
  const bar = box.querySelector("progress");
  const state = box.querySelector("[data-testid=live-state]");
  const step = box.querySelector("[data-testid=live-step]");
  const note = box.querySelector("[data-testid=live-note]");
  const steps = (box.dataset.steps || "").split(",").filter(Boolean);
  const doneLabel = box.dataset.doneLabel || "succeeded";
  const label = (s) => (s === "succeeded" ? doneLabel : s);
  const source = new EventSource(box.dataset.stream);
  box.dataset.live = "open";
  const show = (s, st) => {
    state.textContent = label(s);
    if (st) step.textContent = st;
    box.dataset.streamState = label(s);
    if (TERMINAL.includes(s)) bar.value = 100;
    else if (s === "queued") bar.value = 0;
    else if (steps.length) bar.value = Math.max(bar.value, Math.round((100 * Math.max(0, steps.indexOf(st))) / steps.length) + 5);
  };
  source.addEventListener("state", (e) => {
    const data = JSON.parse(e.data);
    show(data.state, data.step);
    if (data.error) note.textContent = " · " + data.error;
  });
  source.addEventListener("progress", (e) => {
    const data = JSON.parse(e.data);
    if (data.items_total > 0) {
      bar.value = Math.round((100 * data.items_done) / data.items_total);
      note.textContent = " · " + data.items_done + " of " + data.items_total + " items";
    }
  });
  source.addEventListener("end", (e) => {
    const data = JSON.parse(e.data);
    source.close();
    show(data.state);
    box.dataset.live = "ended";
    // The page was drawn while the job ran: draw it again with its results.
    if (box.dataset.terminal !== "true") setTimeout(() => location.reload(), 400);
  });
  source.addEventListener("error", () => {
    if (box.dataset.live !== "ended" && source.readyState === EventSource.CLOSED) {
      note.textContent = " · live updates stopped; reload the page";
    }
  });
}

// A list that follows the tenant's events: a scan completed updates its row in place;
// one not on the page is announced with a link to reload.
function liveList(note) {
  const source = new EventSource(note.dataset.liveEvents);
  let unseen = 0;
  source.addEventListener("scan.completed", (e) => {
    const event = JSON.parse(e.data);
    const p = event.payload || {};
    const row = document.querySelector(`tr[data-scan="${CSS.escape(p.scan_id || "")}"]`);
    if (row) {
      row.querySelector("[data-field=status]").innerHTML = '<span class="badge completed">completed</span>';
      const d = document.createElement("span");
      d.className = "badge " + p.disposition;
      d.textContent = p.disposition;
      row.querySelector("[data-field=disposition]").replaceChildren(d);
      if (p.counts && p.counts.findings !== undefined) row.querySelector("[data-field=findings]").textContent = p.counts.findings;
      note.textContent = `Scan ${p.name} completed (${p.disposition}).`;
    } else {
      unseen += 1;
      note.textContent = `${unseen} more ${unseen === 1 ? "scan" : "scans"} completed, the last ${p.name} (${p.disposition}). `;
      const reload = document.createElement("a");
      reload.href = location.href;
      reload.textContent = "Reload the list";
      note.append(reload);
    }
  });
}

document.addEventListener("DOMContentLoaded", () => {
  for (const note of document.querySelectorAll("[data-live-events]")) liveList(note);
  localTimes(document);
  tenantMenu();
  fileInputs();
  for (const box of document.querySelectorAll("[data-stream]")) liveProgress(box);
});
