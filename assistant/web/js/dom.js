// Small DOM and SVG builders. Text always goes in as text (never as HTML): device names,
// transcripts and replies come from outside and must not become markup.

const SVG_NS = "http://www.w3.org/2000/svg";

function fill(el, attrs, children) {
  for (const [key, value] of Object.entries(attrs || {})) {
    if (value === null || value === undefined || value === false) continue;
    if (key.startsWith("on") && typeof value === "function") {
      el.addEventListener(key.slice(2), value);
    } else if (key === "class") {
      el.setAttribute("class", value);
    } else if (key === "dataset") {
      Object.assign(el.dataset, value);
    } else if (key in el && !(el instanceof SVGElement) && key !== "list") {
      el[key] = value;
    } else {
      el.setAttribute(key, value === true ? "" : String(value));
    }
  }
  for (const child of children.flat(Infinity)) {
    if (child === null || child === undefined || child === false) continue;
    el.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return el;
}

/** h("div", {class: "card"}, "text", otherNode, [more, nodes]) */
export function h(tag, attrs, ...children) {
  return fill(document.createElement(tag), attrs, children);
}

/** s("rect", {x: 0, y: 0, width: 10, height: 10}) : an SVG element */
export function s(tag, attrs, ...children) {
  return fill(document.createElementNS(SVG_NS, tag), attrs, children);
}

export function replace(el, ...children) {
  el.replaceChildren();
  return fill(el, {}, children);
}

export function ms(value) {
  if (value === null || value === undefined || Number.isNaN(value)) return "–";
  if (value >= 10000) return `${(value / 1000).toFixed(1)} s`;
  if (value >= 100) return `${Math.round(value)} ms`;
  return `${Number(value).toFixed(1)} ms`;
}

export function bytes(n) {
  if (!n) return "0 B";
  if (n >= 1 << 20) return `${(n / (1 << 20)).toFixed(1)} MB`;
  if (n >= 1 << 10) return `${(n / (1 << 10)).toFixed(1)} KB`;
  return `${n} B`;
}

export function ago(epochSeconds) {
  if (!epochSeconds) return "never";
  const s = Math.max(0, Date.now() / 1000 - epochSeconds);
  if (s < 60) return `${Math.round(s)} s ago`;
  if (s < 3600) return `${Math.round(s / 60)} min ago`;
  if (s < 86400) return `${Math.round(s / 3600)} h ago`;
  return new Date(epochSeconds * 1000).toLocaleString();
}

export function clock(epochSeconds) {
  return new Date(epochSeconds * 1000).toLocaleTimeString();
}

// One colour per device, the same in every view (ring, bars, timeline lanes).
const PALETTE = ["#2f7dd1", "#e0803a", "#3a9e6a", "#a35bc9", "#c94b5b", "#7a8a2e", "#2ea3a3"];
const assigned = new Map();
export function colour(name) {
  if (!assigned.has(name)) assigned.set(name, PALETTE[assigned.size % PALETTE.length]);
  return assigned.get(name);
}

export function empty(text) {
  return h("p", { class: "empty" }, text);
}

/** A small dot in the device's colour (SVG: no inline style needed under the page's CSP). */
export function dot(name) {
  return s(
    "svg",
    { class: "dot", viewBox: "0 0 10 10", width: 10, height: 10, "aria-hidden": "true" },
    s("circle", { cx: 5, cy: 5, r: 5, fill: colour(name) }),
  );
}
