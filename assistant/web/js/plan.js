// Plan: for each served model, the plan it runs on now, drawn. Prefill: the ring order and
// each device's share of attention heads, MLP columns and sequence rows (or layers, for a
// pipeline). Decode: tensor parallel over the same heads and columns, or one device alone.
// Why: the planner's prediction for every strategy it weighed and the devices it left out.
// Beside the prediction, the latest measured request on the model.

import * as api from "./api.js";
import { colour, dot, empty, h, ms, replace, s } from "./dom.js";

const STRATEGY = {
  local: "one device, the whole model",
  tp: "tensor parallel (Megatron-LM): even split, all-reduce after attention and MLP",
  sp: "sequence parallel: every device holds all weights, the sequence is split",
  pp: "pipeline: layer ranges weighted by memory",
  hmp: "Galaxy hybrid parallel: uneven heads, columns and rows by measured speed",
};

export class PlanView {
  constructor(root, ctx) {
    this.root = root;
    this.ctx = ctx;
    this.data = null;
    this.requests = [];
  }

  async refresh() {
    const [data, requests] = await Promise.all([
      api.get("/v1/plan"),
      api.get("/v1/requests?limit=100"),
    ]);
    this.data = data;
    this.requests = requests;
    this.render();
  }

  async refreshMeasured() {
    if (!this.data) return;
    this.requests = await api.get("/v1/requests?limit=100");
    this.render();
  }

  render() {
    const d = this.data;
    const models = Object.entries(d.plans);
    replace(
      this.root,
      h("h2", {}, "Plans"),
      this.status(d),
      models.length
        ? models.map(([name, plan]) => this.model(name, plan, d))
        : empty("No plan yet: the models are planned when workers join (or on the first request)."),
    );
  }

  status(d) {
    const replan = d.replan || {};
    const last = replan.last;
    const transfers = Object.entries(d.transfers || {});
    return h(
      "div",
      { class: "card status" },
      h(
        "p",
        {},
        h("strong", {}, "Workers online: "),
        d.workers_online.length ? d.workers_online.join(", ") : "none (the gateway computes alone)",
      ),
      h(
        "p",
        {},
        h("strong", {}, "Re-planning: "),
        replan.state || "idle",
        last && last.reason
          ? ` (last: ${last.reason}${last.took_ms ? `, ${ms(last.took_ms)}` : ""})`
          : "",
        last && last.error ? h("span", { class: "error" }, ` last failed: ${last.error}`) : "",
      ),
      transfers.length
        ? h(
            "p",
            {},
            h("strong", {}, "Shards on their way: "),
            transfers.map(([n, t]) => `${n} ${t.sent_mb} of ${t.total_mb} MB`).join(", "),
          )
        : null,
    );
  }

  model(name, plan, d) {
    const devices = plan.devices;
    return h(
      "article",
      { class: "card plan", dataset: { model: name } },
      h(
        "header",
        {},
        h("h3", {}, name),
        h("span", { class: "badge strategy" }, plan.strategy + (plan.overlap ? " + overlap" : "")),
      ),
      h("p", { class: "muted" }, STRATEGY[plan.strategy] || ""),
      h(
        "div",
        { class: "phases" },
        h(
          "section",
          { class: "phase", dataset: { phase: "prefill" } },
          h("h4", {}, plan.causal ? "Prefill" : "Forward pass"),
          ring(devices, plan.strategy === "pp"),
          legend(devices),
          this.shares(plan, d.plan_seq_len),
        ),
        plan.causal ? this.decode(plan) : null,
      ),
      this.why(plan, d),
      this.measured(name, plan, d),
    );
  }

  shares(plan, seqLen) {
    const devices = plan.devices;
    const rows = [];
    if (plan.heads.length) rows.push(bar("Attention heads", devices, plan.heads));
    if (plan.mlp_columns.length) rows.push(bar("MLP columns", devices, plan.mlp_columns));
    if (plan.strategy === "sp" || plan.strategy === "hmp") {
      rows.push(bar(`Sequence rows (of a ${seqLen}-token prompt)`, devices, plan.seq_rows));
    }
    if (plan.layers.length) rows.push(bar("Layers", devices, plan.layers));
    if (!rows.length)
      rows.push(
        bar(
          "Whole model",
          devices,
          devices.map(() => 1),
        ),
      );
    return h("div", { class: "shares" }, rows);
  }

  decode(plan) {
    // How the engine runs a one-token step (edge_worker/engine/model.py: decode).
    const devices = plan.devices;
    const last = devices[devices.length - 1];
    let mode;
    let body;
    if (plan.strategy === "local" || devices.length === 1) {
      mode = "one device";
      body = [h("p", {}, `${devices[0]} decodes alone.`), bar("Whole model", devices, [1])];
    } else if (plan.strategy === "sp" || plan.decode === "local") {
      mode = "one device";
      const why =
        plan.strategy === "sp"
          ? "every device holds every weight, and a token has no sequence to split"
          : "one token per step leaves too little to split over the ring's latency";
      body = [
        h("p", {}, `${last} decodes alone, with the K/V cache handed to it after prefill: ${why}.`),
        bar(
          "Decode work",
          devices,
          devices.map((n) => (n === last ? 1 : 0)),
        ),
      ];
    } else if (plan.strategy === "pp") {
      mode = "pipeline";
      body = [
        h("p", {}, "Each token passes down the pipeline:"),
        bar("Layers", devices, plan.layers),
      ];
    } else {
      mode = "tensor parallel";
      body = [
        h(
          "p",
          {},
          "One token, so no sequence split: heads and columns as in prefill, the K/V cache ",
          "sharded by heads, two all-reduces per layer.",
        ),
        bar("Attention heads", devices, plan.heads),
        bar("MLP columns", devices, plan.mlp_columns),
      ];
    }
    return h(
      "section",
      { class: "phase", dataset: { phase: "decode" } },
      h("h4", {}, `Decode (${mode})`),
      body,
    );
  }

  why(plan, d) {
    const parts = [h("h4", {}, "Why this plan")];
    const alternatives = Object.entries(plan.alternatives_ms || {});
    if (alternatives.length) {
      const worst = Math.max(...alternatives.map(([, v]) => v));
      const best = Math.min(...alternatives.map(([, v]) => v));
      const what = plan.causal
        ? `prefill of ${d.plan_seq_len} tokens + ${d.plan_decode_tokens} decode steps`
        : `one pass over ${d.plan_seq_len} tokens`;
      parts.push(
        h(
          "p",
          { class: "muted" },
          `The planner's predictions, ${what}, best subset of devices each:`,
        ),
        h(
          "div",
          { class: "alternatives" },
          alternatives.map(([label, value]) =>
            h(
              "div",
              { class: value === best ? "alt chosen" : "alt" },
              h("span", { class: "alt-label" }, label),
              h("span", { class: "alt-track" }, fillBar(value / worst)),
              h(
                "span",
                { class: "alt-value" },
                ms(value),
                value === best ? " chosen" : ` +${percent(value / best - 1)}`,
              ),
            ),
          ),
        ),
      );
    }
    if (plan.reason) parts.push(h("p", {}, plan.reason));
    for (const ex of plan.excluded || []) {
      parts.push(
        h("p", { class: "excluded" }, h("strong", {}, `${ex.name} left out: `), ex.reason),
      );
    }
    if (plan.gflops) {
      parts.push(
        h(
          "p",
          { class: "muted" },
          "Planned on measured speeds: ",
          Object.entries(plan.gflops)
            .map(([n, g]) => `${n} ${g} GFLOP/s`)
            .join(", "),
        ),
      );
    }
    return h("section", { class: "why" }, parts);
  }

  measured(name, plan, d) {
    const last = this.requests.find((r) => r.model === name && r.status === "ok" && r.timings);
    const t = last ? last.timings : null;
    const rows = [];
    if (plan.predicted_ms !== undefined) {
      rows.push(
        h("dt", {}, `Predicted ${plan.causal ? "prefill" : "pass"}, ${d.plan_seq_len} tokens`),
        h("dd", { class: "predicted" }, ms(plan.predicted_ms)),
      );
    } else {
      rows.push(
        h("dt", {}, "Predicted"),
        h(
          "dd",
          { class: "muted" },
          "not predicted: the strategy is fixed (GALAXY_STRATEGY=auto lets the planner choose and predict)",
        ),
      );
    }
    if (t) {
      const prefill = t.prefill_ms ?? firstStep(t.trace);
      const size = t.prompt_tokens ? `, ${t.prompt_tokens} tokens` : "";
      rows.push(
        h("dt", {}, `Measured ${plan.causal ? "prefill" : "pass"}${size} (request ${last.id})`),
        h("dd", { class: "measured" }, ms(prefill)),
      );
      if (t.decode_ms_per_token !== undefined) {
        rows.push(
          h("dt", {}, "Measured decode, per token"),
          h("dd", {}, ms(t.decode_ms_per_token)),
        );
      }
      rows.push(h("dt", {}, "Measured end to end"), h("dd", {}, ms(t.total_ms)));
    } else {
      rows.push(
        h("dt", {}, "Measured"),
        h("dd", { class: "muted" }, "no request on this model yet"),
      );
    }
    return h(
      "section",
      { class: "latency" },
      h("h4", {}, "Latency"),
      h("dl", { class: "facts" }, rows),
    );
  }
}

function percent(fraction) {
  const p = fraction * 100;
  return `${p < 10 ? p.toFixed(1) : Math.round(p)}%`;
}

function firstStep(trace) {
  return trace && trace.length ? trace[0].ms : undefined;
}

function fillBar(fraction) {
  const el = h("span", { class: "alt-fill" });
  el.style.width = `${Math.max(1, fraction * 100).toFixed(1)}%`; // CSSOM: allowed by the CSP
  return el;
}

/** A stacked bar: each device's share of `values`, in its colour, with the count. */
function bar(label, devices, values) {
  const total = values.reduce((a, b) => a + b, 0) || 1;
  const track = h("div", { class: "bar", role: "img", "aria-label": label });
  devices.forEach((name, i) => {
    const v = values[i] || 0;
    if (!v) return;
    const seg = h("span", { class: "seg", title: `${name}: ${v} of ${total}` }, String(v));
    seg.style.width = `${((100 * v) / total).toFixed(2)}%`;
    seg.style.background = colour(name);
    track.append(seg);
  });
  return h(
    "div",
    { class: "share" },
    h("div", { class: "share-label" }, label, h("span", { class: "muted" }, ` (${total})`)),
    track,
  );
}

function legend(devices) {
  return h(
    "p",
    { class: "legend" },
    devices.map((n) => h("span", {}, dot(n), " ", n)),
  );
}

/** The devices in ring order on a circle, arrows in the direction data moves. */
function ring(devices, chain) {
  const size = 220;
  const c = size / 2;
  const r = devices.length > 1 ? 70 : 0;
  // One device: no ring, a short drawing (its name above the node).
  const box = devices.length > 1 ? `0 0 ${size} ${size}` : `0 ${c - 50} ${size} 80`;
  const pos = devices.map((_, i) => {
    const a = -Math.PI / 2 + (2 * Math.PI * i) / devices.length;
    return [c + r * Math.cos(a), c + r * Math.sin(a)];
  });
  const parts = [];
  const hops = chain ? devices.length - 1 : devices.length > 1 ? devices.length : 0;
  for (let i = 0; i < hops; i++) {
    const [x1, y1] = pos[i];
    const [x2, y2] = pos[(i + 1) % devices.length];
    const len = Math.hypot(x2 - x1, y2 - y1) || 1;
    const [ux, uy] = [(x2 - x1) / len, (y2 - y1) / len];
    const [px, py] = [-uy, ux];
    // Two devices: the hops there and back would overlap; draw them side by side.
    const off = devices.length === 2 && !chain ? 7 : 0;
    const [sx, sy] = [x1 + ux * 20 + px * off, y1 + uy * 20 + py * off];
    const [ex, ey] = [x2 - ux * 22 + px * off, y2 - uy * 22 + py * off];
    parts.push(s("line", { x1: sx, y1: sy, x2: ex, y2: ey, class: "hop" }));
    parts.push(
      s("polygon", {
        class: "arrow",
        points: `${ex + ux * 8},${ey + uy * 8} ${ex + px * 5},${ey + py * 5} ${ex - px * 5},${ey - py * 5}`,
      }),
    );
  }
  devices.forEach((name, i) => {
    const [x, y] = pos[i];
    parts.push(
      s(
        "g",
        { class: "node", dataset: { device: name } },
        s("circle", { cx: x, cy: y, r: 17, fill: colour(name) }),
        s("text", { x, y: y + 4, class: "rank" }, String(i)),
        s("text", { x, y: y > c + 1 ? y + 32 : y - 24, class: "name" }, name),
      ),
    );
  });
  return s(
    "svg",
    {
      class: "ring",
      viewBox: box,
      role: "img",
      "aria-label": `${chain ? "pipeline" : "ring"} order: ${devices.join(" → ")}`,
    },
    s("title", {}, `${chain ? "Pipeline" : "Ring"} order: ${devices.join(" → ")}`),
    parts,
  );
}
