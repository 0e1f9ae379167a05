// A request's timeline per device, from the workers' own reports (the request log's
// `timings.trace`): one lane per device; each cluster step (prefill, decode) starts where the
// gateway started it; inside it the device's compute and ring-wait time. The workers report
// durations, not start times, so within a step the segments are laid end to end (per layer,
// compute then wait, for prefill); bytes sent and received are per step, shown as labels.

import { bytes, colour, dot, h, ms, s } from "./dom.js";

const W = 960; // drawing units; the SVG scales to its box
const LABEL = 120;
const LANE = 34;
const AXIS = 22;

export function timeline(request) {
  const trace = request.timings?.trace || [];
  if (!trace.length) {
    return h(
      "p",
      { class: "empty" },
      "This request ran no traced cluster step (a command the templates understood, or a ",
      "voice turn: its cluster work is counted in cluster_ms but not traced per device).",
    );
  }
  const names = lanes(request, trace);
  const prefill = trace.find((step) => step.op === "prefill");
  return h(
    "div",
    { class: "timeline", dataset: { request: request.id } },
    h(
      "p",
      { class: "legend" },
      names.filter((n) => n !== "gateway").map((n) => h("span", {}, dot(n), " ", n)),
      h("span", {}, swatch("compute"), " compute (device colour)"),
      h("span", {}, swatch("wait"), " waiting on the ring"),
      h("span", {}, swatch("other"), " other (send, framing)"),
      h("span", {}, swatch("step"), " the step at the gateway"),
    ),
    h("h4", {}, `Whole request: ${trace.length} cluster step${trace.length > 1 ? "s" : ""}`),
    h("div", { class: "scroll" }, overview(trace, names)),
    prefill && hasLayers(prefill)
      ? [
          h("h4", {}, "Prefill, layer by layer"),
          h("div", { class: "scroll" }, layers(prefill, names)),
        ]
      : null,
    h(
      "p",
      { class: "muted" },
      "Workers report how long they computed and waited, not when: within a step the ",
      "segments are laid end to end from the step's start. ↑ sent and ↓ received: bytes on the ring.",
    ),
    table(trace, names),
  );
}

function hasLayers(step) {
  return Object.values(step.devices || {}).some((d) => d.layers && d.layers.length);
}

function lanes(request, trace) {
  const seen = new Set();
  for (const step of trace) for (const n of Object.keys(step.devices || {})) seen.add(n);
  const planned = (request.plan?.devices || []).filter((n) => seen.has(n));
  const rest = [...seen].filter((n) => !planned.includes(n));
  return [...planned, ...rest, "gateway"];
}

function swatch(kind) {
  return s(
    "svg",
    { class: "dot", viewBox: "0 0 10 10", width: 10, height: 10 },
    s("rect", { width: 10, height: 10, class: `seg-${kind}` }),
  );
}

/** Axes and lanes; `note(name)` is a second line under a lane's name (bytes moved). */
function frame(names, span, ticksLabel, note) {
  const height = AXIS + names.length * LANE + 4;
  const x = (t) => LABEL + ((W - LABEL - 8) * t) / span;
  const parts = [];
  names.forEach((n, i) => {
    const y = AXIS + i * LANE;
    const sub = note ? note(n) : "";
    parts.push(s("text", { x: 4, y: y + (sub ? 14 : LANE / 2 + 4), class: "lane-name" }, n));
    if (sub) parts.push(s("text", { x: 4, y: y + 27, class: "lane-note" }, sub));
    parts.push(s("line", { x1: LABEL, x2: W - 8, y1: y + LANE, y2: y + LANE, class: "lane-line" }));
  });
  for (const t of ticks(span)) {
    parts.push(s("line", { x1: x(t), x2: x(t), y1: AXIS - 4, y2: height, class: "tick" }));
    parts.push(s("text", { x: x(t), y: AXIS - 8, class: "tick-label" }, ticksLabel(t)));
  }
  return { parts, x, height, laneY: (name) => AXIS + names.indexOf(name) * LANE + 4 };
}

function ticks(span) {
  const raw = span / 6;
  const mag = 10 ** Math.floor(Math.log10(raw || 1));
  const step = [1, 2, 5, 10].map((k) => k * mag).find((v) => v >= raw) || mag;
  const out = [];
  for (let t = 0; t <= span + 1e-9; t += step) out.push(t);
  return out;
}

/** Every step of the request on one time axis (ms since its first step). */
function overview(trace, names) {
  const span = Math.max(...trace.map((st) => st.start_ms + Math.max(st.ms, maxTotal(st)))) || 1;
  const moved = (name, key) => trace.reduce((a, st) => a + (st.devices?.[name]?.[key] || 0), 0);
  const f = frame(
    names,
    span,
    (t) => ms(t),
    (n) => (n === "gateway" ? "" : `↑${bytes(moved(n, "sent"))} ↓${bytes(moved(n, "received"))}`),
  );
  const segs = [];
  trace.forEach((step, k) => {
    const x0 = step.start_ms;
    // The gateway's lane: the step as the gateway saw it (dispatch to last answer).
    segs.push(
      block(
        f,
        "gateway",
        x0,
        step.ms,
        "step",
        `${step.op} step ${k}: ${ms(step.ms)} at the gateway`,
      ),
    );
    for (const [name, d] of Object.entries(step.devices || {})) {
      const title =
        `${name}, ${step.op} step ${k}: ${ms(d.total_ms)} (compute ${ms(d.compute_ms)}, ` +
        `wait ${ms(d.wait_ms)}); sent ${bytes(d.sent)}, received ${bytes(d.received)}`;
      const other = Math.max(0, d.total_ms - d.compute_ms - d.wait_ms);
      let t = x0;
      segs.push(block(f, name, t, d.compute_ms, "compute", title, name));
      t += d.compute_ms;
      segs.push(block(f, name, t, d.wait_ms, "wait", title));
      t += d.wait_ms;
      segs.push(block(f, name, t, other, "other", title));
    }
  });
  return s(
    "svg",
    {
      class: "chart",
      viewBox: `0 0 ${W} ${f.height}`,
      role: "img",
      "aria-label": "timeline per device",
    },
    f.parts,
    segs,
  );
}

/** The prefill step alone, each layer's compute then ring wait per device. */
function layers(step, names) {
  const devices = names.filter((n) => n === "gateway" || step.devices[n]);
  const span = Math.max(step.ms, maxTotal(step)) || 1;
  const f = frame(
    devices,
    span,
    (t) => ms(t),
    (n) => {
      const d = step.devices[n];
      return d ? `↑${bytes(d.sent)} ↓${bytes(d.received)}` : "";
    },
  );
  const segs = [block(f, "gateway", 0, step.ms, "step", `prefill: ${ms(step.ms)} at the gateway`)];
  for (const [name, d] of Object.entries(step.devices)) {
    let t = 0;
    (d.layers || []).forEach(([compute, wait], i) => {
      const title = `${name}, layer ${i}: compute ${ms(compute)}, ring wait ${ms(wait)}`;
      segs.push(block(f, name, t, compute, "compute", title, name));
      t += compute;
      segs.push(block(f, name, t, wait, "wait", title));
      t += wait;
    });
    const rest = Math.max(0, d.total_ms - t);
    segs.push(
      block(
        f,
        name,
        t,
        rest,
        "other",
        `${name}: ${ms(rest)} outside the layers (embedding, head, sending)`,
      ),
    );
  }
  return s(
    "svg",
    {
      class: "chart",
      viewBox: `0 0 ${W} ${f.height}`,
      role: "img",
      "aria-label": "prefill per layer and device",
    },
    f.parts,
    segs,
  );
}

function maxTotal(step) {
  return Math.max(0, ...Object.values(step.devices || {}).map((d) => d.total_ms || 0));
}

function block(f, lane, t, dur, kind, title, name) {
  if (!(dur > 0)) return null;
  const x = f.x(t);
  const w = Math.max(0.6, f.x(t + dur) - x);
  return s(
    "rect",
    {
      x,
      y: f.laneY(lane),
      width: w,
      height: LANE - 8,
      class: `seg-${kind}`,
      fill: kind === "compute" && name ? colour(name) : null,
    },
    s("title", {}, title),
  );
}

/** The numbers: the prefill step per device, then the decode steps summed. */
function table(trace, names) {
  const rows = [];
  const devices = names.filter((n) => n !== "gateway");
  const groups = [
    ["prefill", trace.filter((st) => st.op === "prefill")],
    ["decode", trace.filter((st) => st.op !== "prefill")],
  ];
  for (const [op, steps] of groups) {
    if (!steps.length) continue;
    for (const n of devices) {
      const mine = steps.map((st) => st.devices?.[n]).filter(Boolean);
      if (!mine.length) continue;
      const sum = (k) => mine.reduce((a, d) => a + (d[k] || 0), 0);
      rows.push(
        h(
          "tr",
          {},
          h("td", {}, `${op}${steps.length > 1 ? ` ×${steps.length}` : ""}`),
          h("td", {}, dot(n), " ", n),
          h("td", {}, ms(sum("total_ms"))),
          h("td", {}, ms(sum("compute_ms"))),
          h("td", {}, ms(sum("wait_ms"))),
          h("td", {}, bytes(sum("sent"))),
          h("td", {}, bytes(sum("received"))),
        ),
      );
    }
  }
  return h(
    "div",
    { class: "scroll" },
    h(
      "table",
      { class: "numbers" },
      h(
        "thead",
        {},
        h(
          "tr",
          {},
          ["Steps", "Device", "Total", "Compute", "Wait", "Sent", "Received"].map((c) =>
            h("th", {}, c),
          ),
        ),
      ),
      h("tbody", {}, rows),
    ),
  );
}
