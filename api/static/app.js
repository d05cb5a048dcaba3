// docpipe dashboard: live job progress, upload, replay, cancel, delete, and the charts (plotly.js, which the
// app serves from the installed plotly package on the pages that have charts). No build step.
"use strict";

const FINAL = ["succeeded", "partial", "failed", "cancelled"];

async function api(method, url, body) {
  const response = await fetch(url, {method, body, credentials: "same-origin",
                                     headers: {"Accept": "application/json"}});
  let data = null;
  try { data = await response.json(); } catch (e) { data = null; }
  if (!response.ok) {
    const message = data && data.message ? data.message : `${response.status} ${response.statusText}`;
    throw new Error(message);
  }
  return data;
}

const OUTCOMES = [["done", "indexed"], ["unchanged", "unchanged"], ["skipped", "duplicates"], ["failed", "failed"]];

// one part per outcome, each its share of the total: a partial job shows its failed share in red
function setBar(bar, job) {
  const c = job.counters;
  const whole = Math.max(c.total, OUTCOMES.reduce((sum, [name]) => sum + c[name], 0));
  for (const [name] of OUTCOMES) {
    const seg = bar.querySelector(`[data-seg=${name}]`);
    if (seg) seg.style.width = `${whole ? Math.round((1000 * c[name]) / whole) / 10 : 0}%`;
  }
  bar.setAttribute("aria-valuenow", String(Math.round(job.progress * 100)));
  bar.title = OUTCOMES.map(([name, label]) => `${c[name]} ${label}`).join(", ") + ` of ${c.total}`;
}

function fill(root, job) {
  for (const el of root.querySelectorAll("[data-field]")) {
    const name = el.dataset.field;
    const value = name === "state" ? job.state : job.counters[name];
    if (value === undefined) continue;
    el.textContent = String(value);
    if (name === "state") el.className = `state state-${job.state}`;
  }
  const bar = root.querySelector(".bar");
  if (bar) setBar(bar, job);
}

function jobRow(job) {
  const tr = document.createElement("tr");
  tr.dataset.job = job.id;
  const cells = [["link"], ["kind"], ["state"], ["bar"], ["total"], ["done"], ["unchanged"], ["skipped"],
                 ["failed"], ["created"]];
  for (const [what] of cells) {
    const td = document.createElement("td");
    if (what === "link") {
      const a = document.createElement("a");
      a.href = `/ui/jobs/${job.id}`;
      const code = document.createElement("code");
      code.textContent = job.id.slice(0, 8);
      a.appendChild(code);
      td.appendChild(a);
    } else if (what === "kind") {
      td.textContent = job.kind;
    } else if (what === "state") {
      const span = document.createElement("span");
      span.dataset.field = "state";
      td.appendChild(span);
    } else if (what === "bar") {
      td.className = "progress-cell";
      const bar = document.createElement("div");
      bar.className = "bar";
      bar.setAttribute("role", "progressbar");
      for (const [name] of OUTCOMES) {
        const seg = document.createElement("span");
        seg.className = `seg seg-${name}`;
        seg.dataset.seg = name;
        bar.appendChild(seg);
      }
      td.appendChild(bar);
    } else if (what === "created") {
      td.className = "when";
      td.textContent = (job.created_at || "").replace("T", " ").slice(0, 19);
    } else {
      td.className = "num";
      td.dataset.field = what;
    }
    tr.appendChild(td);
  }
  fill(tr, job);
  return tr;
}

function pollJobs(table) {
  const state = table.dataset.pollJobs;
  const tbody = table.querySelector("tbody");
  async function tick() {
    try {
      const data = await api("GET", `/v1/jobs?limit=50${state ? `&state=${encodeURIComponent(state)}` : ""}`);
      const jobs = data.items || data.jobs;  // a page of the list, or the list itself
      const rows = new Map([...tbody.querySelectorAll("tr[data-job]")].map((tr) => [tr.dataset.job, tr]));
      const ordered = jobs.map((job) => {
        const tr = rows.get(job.id) || jobRow(job);
        fill(tr, job);
        return tr;
      });
      const empty = tbody.querySelector("tr.empty");
      if (empty && ordered.length) empty.remove();
      ordered.forEach((tr) => tbody.appendChild(tr));
      rows.forEach((tr, id) => { if (!jobs.some((j) => j.id === id)) tr.remove(); });
    } catch (e) { /* a missed poll is retried on the next tick */ }
    setTimeout(tick, 1500);
  }
  setTimeout(tick, 1000);
}

function pollJob(section) {
  const id = section.dataset.pollJob;
  let state = section.dataset.state;
  if (FINAL.includes(state)) return;
  async function tick() {
    try {
      const job = await api("GET", `/v1/jobs/${id}`);
      fill(section, job);
      if (FINAL.includes(job.state)) { window.location.reload(); return; }  // render dead letters
      state = job.state;
    } catch (e) { /* retried */ }
    setTimeout(tick, 1000);
  }
  setTimeout(tick, 700);
}

function wireUpload(form) {
  const status = form.querySelector("[data-upload-status]");
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const input = form.querySelector("input[type=file]");
    if (!input.files.length) return;
    const body = new FormData();
    for (const file of input.files) body.append("files", file, file.name);
    status.textContent = "uploading…";
    status.className = "status";
    try {
      const accepted = await api("POST", "/v1/documents", body);
      status.textContent = `job ${accepted.job_id.slice(0, 8)} queued`;
      window.location.href = `/ui/jobs/${accepted.job_id}`;
    } catch (e) {
      status.textContent = e.message;
      status.className = "status error";
    }
  });
}

function wireAction(button, verb) {
  const status = document.querySelector("[data-action-status]");
  button.addEventListener("click", async () => {
    button.disabled = true;
    try {
      const result = await api("POST", `/v1/jobs/${button.dataset[verb]}/${verb}`);
      if (verb === "replay") window.location.href = `/ui/jobs/${result.job_id}`;
      else window.location.reload();
    } catch (e) {
      status.textContent = e.message;
      status.className = "status error";
      button.disabled = false;
    }
  });
}

// the server sends each chart as a plotly figure; `responsive` redraws it to its card's width on resize
function drawCharts() {
  for (const el of document.querySelectorAll("[data-chart]")) {
    const figure = JSON.parse(el.dataset.chart);
    window.Plotly.newPlot(el, figure.data, figure.layout, {responsive: true, displayModeBar: false});
  }
}

// plotly.js (4.8 MB) loads async, so the page's forms and buttons work before it has arrived
function whenPlotly(draw) {
  const script = document.querySelector("script[data-plotly]");
  if (window.Plotly) draw();
  else if (script) script.addEventListener("load", draw);
}

// delete through the API (DELETE /v1/documents/{id}): a delete job, linked in the row until it is done
function wireDelete(button) {
  const status = button.parentElement.querySelector("[data-delete-status]");
  button.addEventListener("click", async () => {
    const name = button.dataset.name;
    if (!window.confirm(`Delete ${name}? Its chunks leave the index and its rows are removed.`)) return;
    button.disabled = true;
    status.textContent = "deleting…";
    status.className = "status";
    try {
      const accepted = await api("DELETE", `/v1/documents/${button.dataset.delete}`);
      const link = document.createElement("a");
      link.href = `/ui/jobs/${accepted.job_id}`;
      link.textContent = `delete job ${accepted.job_id.slice(0, 8)} ${accepted.state}`;
      status.replaceChildren(link);
      button.closest("tr").classList.add("deleting");
    } catch (e) {
      status.textContent = e.message;
      status.className = "status error";
      button.disabled = false;
    }
  });
}

document.addEventListener("DOMContentLoaded", () => {
  if (document.querySelector("[data-chart]")) whenPlotly(drawCharts);
  document.querySelectorAll("[data-delete]").forEach(wireDelete);
  document.querySelectorAll("[data-poll-jobs]").forEach(pollJobs);
  document.querySelectorAll("[data-poll-job]").forEach(pollJob);
  document.querySelectorAll("[data-upload]").forEach(wireUpload);
  document.querySelectorAll("[data-replay]").forEach((b) => wireAction(b, "replay"));
  document.querySelectorAll("[data-cancel]").forEach((b) => wireAction(b, "cancel"));
});
