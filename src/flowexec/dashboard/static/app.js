// flowexec dashboard: local times, confirmed actions, and an execution's live event log.
"use strict";

const STATUS_AFTER = {
  "flow:started": "running", "flow:resumed": "running", "flow:completed": "completed",
  "flow:failed": "failed", "flow:stopped": "stopped", "flow:paused": "paused",
  "flow:retrying": "created", "flow:requeued": "created", "flow:suspended": "created",
};
const LABELS = {
  created: "queued", running: "running", paused: "paused",
  completed: "completed", failed: "failed", stopped: "stopped",
};

function localTime(el) {
  const when = new Date(el.getAttribute("datetime"));
  if (!isNaN(when)) {
    el.textContent = when.toLocaleString();
    el.title = el.getAttribute("datetime");
  }
}

function duration(ms) {
  const s = Math.max(ms, 0) / 1000;
  if (s < 1) return Math.round(ms) + " ms";
  if (s < 60) return s.toFixed(1) + " s";
  const whole = Math.floor(s);
  if (whole >= 86400) return Math.floor(whole / 86400) + " d " + Math.floor(whole % 86400 / 3600) + " h";
  if (whole >= 3600) return Math.floor(whole / 3600) + " h " + Math.floor(whole % 3600 / 60) + " min";
  return Math.floor(whole / 60) + " min " + (whole % 60) + " s";
}

function cell(row, text) {
  const td = document.createElement("td");
  td.textContent = text;
  row.appendChild(td);
  return td;
}

function showStatus(box, status) {
  box.dataset.status = status;
  const badge = box.querySelector(".status");
  badge.className = "status status-" + status;
  badge.dataset.status = status;
  badge.textContent = LABELS[status] || status;
  document.querySelectorAll("form[data-when]").forEach((form) => {
    form.hidden = !form.dataset.when.split(" ").includes(status);
  });
}

function addEvent(body, event) {
  const row = document.createElement("tr");
  row.className = "ev ev-" + event.type.replace(":", "-");
  cell(row, String(event.index)).className = "num";
  const at = document.createElement("time");
  at.setAttribute("datetime", event.at);
  localTime(at);
  cell(row, "").appendChild(at);
  cell(row, event.type);
  const data = event.data || {};
  cell(row, typeof data.node_id === "string" ? data.node_id : "");
  cell(row, typeof data.duration_ms === "number" ? duration(data.duration_ms) : "");
  cell(row, String(event.attempt)).className = "num";
  body.appendChild(row);
}

function follow(box) {
  const body = document.getElementById("events");
  const live = document.getElementById("live");
  const source = new EventSource(box.dataset.events);
  source.onopen = () => { live.hidden = false; };
  source.onmessage = (message) => {
    const event = JSON.parse(message.data);
    addEvent(body, event);
    if (STATUS_AFTER[event.type]) showStatus(box, STATUS_AFTER[event.type]);
  };
  source.addEventListener("end", () => { source.close(); live.hidden = true; });
  source.addEventListener("error", () => { live.hidden = source.readyState !== EventSource.OPEN; });
}

document.addEventListener("DOMContentLoaded", () => {
  document.querySelectorAll("time[datetime]").forEach(localTime);
  document.querySelectorAll("form[data-confirm]").forEach((form) => {
    form.addEventListener("submit", (e) => {
      if (!window.confirm(form.dataset.confirm)) e.preventDefault();
    });
  });
  document.querySelectorAll("select[data-autosubmit]").forEach((select) => {
    select.addEventListener("change", () => select.form.submit());
  });
  const box = document.getElementById("execution");
  if (box && !["completed", "failed", "stopped"].includes(box.dataset.status)) follow(box);
});
