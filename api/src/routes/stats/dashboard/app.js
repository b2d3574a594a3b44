// Delivery statistics dashboard: fetches /api/v1/stats/delivery (over time and by recipient
// domain) with the pasted token and draws both as hand-written SVG. No library, no CDN.
"use strict";

const SVG = "http://www.w3.org/2000/svg";
const PARTS = ["delivered", "bounced", "deferred", "rejected"];

function $(id) {
  return document.getElementById(id);
}

function el(name, attrs, text) {
  const node = document.createElementNS(SVG, name);
  for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, String(v));
  if (text !== undefined) node.textContent = String(text);
  return node;
}

function setStatus(text, isError) {
  const s = $("status");
  s.textContent = text;
  s.className = isError ? "error" : "";
}

// The token may come in the fragment (#token=...&sender=...), which never reaches a server.
function readFragment() {
  const params = new URLSearchParams(location.hash.replace(/^#/, ""));
  if (params.get("token")) $("token").value = params.get("token");
  if (params.get("sender")) $("sender").value = params.get("sender");
  if (params.get("days")) $("days").value = params.get("days");
  if (params.get("group")) $("group").value = params.get("group");
  if (location.hash) history.replaceState(null, "", location.pathname);
  return Boolean(params.get("token"));
}

async function getStats(query) {
  const response = await fetch("/api/v1/stats/delivery?" + query.toString(), {
    headers: { "X-MAILAPI-TOKEN": $("token").value.trim() },
  });
  let body;
  try {
    body = await response.json();
  } catch (e) {
    throw new Error("HTTP " + response.status);
  }
  if (!response.ok || !body.success) {
    throw new Error((body.error || "HTTP " + response.status) + ": " + (body.message || ""));
  }
  return body;
}

// A row's `sent` is delivered + bounced + deferred; `rejected` is beside it (docs/STATS.md).
function parts(row) {
  return { delivered: row.delivered, bounced: row.bounced, deferred: row.deferred, rejected: row.rejected };
}

// Everything a bar stacks: the row's share of the summary's total_sent.
function total(row) {
  return row.sent + row.rejected;
}

function showSummary(s, period) {
  for (const key of ["total_sent", "delivered", "bounced", "deferred", "rejected"]) {
    $(key).textContent = s[key].toLocaleString("en-US");
  }
  $("delivery_rate").textContent = s.delivery_rate.toFixed(1) + "%";
  $("period").textContent = "From " + period.start + " to " + period.end + " (UTC)";
}

// Stacked columns, oldest on the left.
function drawTime(rows, labelKey) {
  const box = $("time-chart");
  box.replaceChildren();
  const data = rows.slice().reverse();
  const W = 1200, H = 260, left = 48, bottom = 40, top = 16;
  const max = Math.max(1, ...data.map(total));
  const svg = el("svg", { viewBox: `0 0 ${W} ${H}`, role: "img", "aria-label": "delivery over time" });
  const plotW = W - left - 8, plotH = H - top - bottom;
  const step = plotW / Math.max(1, data.length);
  const barW = Math.max(1, step * 0.8);
  svg.append(el("line", { class: "axis", x1: left, y1: H - bottom, x2: W - 8, y2: H - bottom }));
  svg.append(el("text", { x: left - 6, y: top + 8, "text-anchor": "end" }, max));
  svg.append(el("text", { x: left - 6, y: H - bottom, "text-anchor": "end" }, 0));
  const every = Math.ceil(data.length / 12);
  data.forEach((row, i) => {
    const x = left + i * step + (step - barW) / 2;
    let y = H - bottom;
    const p = parts(row);
    for (const part of PARTS) {
      const h = (p[part] / max) * plotH;
      if (h <= 0) continue;
      y -= h;
      const rect = el("rect", { class: part, x, y, width: barW, height: h });
      rect.append(el("title", {}, `${row[labelKey]}: ${p[part]} ${part}`));
      svg.append(rect);
    }
    if (data.length <= 31 && total(row) > 0) {
      svg.append(el("text", { class: "count", x: x + barW / 2, y: y - 3, "text-anchor": "middle" }, total(row)));
    }
    if (i % every === 0) {
      const label = labelKey === "hour" ? row.hour.slice(5, 13).replace("T", " ") + "h" : row.date.slice(5);
      svg.append(el("text", { x: x + barW / 2, y: H - bottom + 16, "text-anchor": "middle" }, label));
    }
  });
  box.append(svg);
}

// Horizontal stacked bars, busiest recipient domain first.
function drawDomains(rows) {
  const box = $("domain-chart");
  box.replaceChildren();
  const data = rows.slice(0, 12);
  if (data.length === 0) {
    const p = document.createElement("p");
    p.className = "empty";
    p.textContent = "No mail in this period.";
    box.append(p);
    return;
  }
  const W = 1200, rowH = 24, left = 220, right = 90;
  const H = data.length * rowH + 8;
  const max = Math.max(1, ...data.map(total));
  const svg = el("svg", { viewBox: `0 0 ${W} ${H}`, role: "img", "aria-label": "delivery by domain" });
  data.forEach((row, i) => {
    const y = 4 + i * rowH;
    svg.append(el("text", { x: left - 8, y: y + 15, "text-anchor": "end" }, row.domain));
    let x = left;
    const p = parts(row);
    for (const part of PARTS) {
      const w = (p[part] / max) * (W - left - right);
      if (w <= 0) continue;
      const rect = el("rect", { class: part, x, y: y + 2, width: w, height: rowH - 6 });
      rect.append(el("title", {}, `${row.domain}: ${p[part]} ${part}`));
      svg.append(rect);
      x += w;
    }
    svg.append(el("text", { class: "count", x: x + 6, y: y + 15 }, total(row)));
  });
  box.append(svg);
}

async function load() {
  const days = Number($("days").value) || 7;
  const end = new Date();
  const start = new Date(end.getTime() - days * 86400000);
  const base = new URLSearchParams({
    start_date: start.toISOString().slice(0, 19) + "Z",
    end_date: end.toISOString().slice(0, 19) + "Z",
  });
  const sender = $("sender").value.trim();
  if (sender) base.set("sender", sender);
  const group = $("group").value === "hour" ? "hour" : "day";
  const overTime = new URLSearchParams(base);
  overTime.set("group_by", group);
  const byDomain = new URLSearchParams(base);
  byDomain.set("group_by", "domain");
  setStatus("Loading…", false);
  try {
    const [time, domains] = await Promise.all([getStats(overTime), getStats(byDomain)]);
    showSummary(time.summary, time.period);
    drawTime(time.breakdown, group === "hour" ? "hour" : "date");
    drawDomains(domains.breakdown);
    setStatus("Updated " + new Date().toISOString().slice(0, 19).replace("T", " ") + " UTC", false);
  } catch (e) {
    setStatus(e.message, true);
  }
}

document.addEventListener("DOMContentLoaded", () => {
  $("controls").addEventListener("submit", (event) => {
    event.preventDefault();
    load();
  });
  if (readFragment()) load();
});
