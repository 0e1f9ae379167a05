// Requests: the request log, newest first, with end-to-end and per-stage times; choosing one
// with a cluster trace draws its timeline per device (timeline.js).

import * as api from "./api.js";
import { clock, empty, h, ms, replace } from "./dom.js";
import { timeline } from "./timeline.js";

// Stages in the order a request goes through them (the rest follow, sorted).
const STAGES = [
  "queue_ms",
  "stt_ms",
  "intent_ms",
  "cluster_ms",
  "prefill_ms",
  "tts_ms",
  "first_audio_ms",
];

export class RequestsView {
  constructor(root, ctx) {
    this.root = root;
    this.ctx = ctx;
    this.requests = [];
    this.chosen = null; // request id whose timeline is open
    this.list = h("div", { class: "scroll" });
    this.detail = h("div", { id: "timeline" });
    replace(root, h("h2", {}, "Recent requests"), this.list, this.detail);
  }

  async refresh() {
    this.requests = await api.get("/v1/requests?limit=50");
    this.render();
  }

  /** Show request `id`'s timeline (null: close it). */
  async open(id) {
    this.chosen = id;
    if (id !== null && !this.requests.some((r) => r.id === id)) await this.refresh();
    else this.render();
    if (id !== null) this.detail.scrollIntoView({ block: "start" });
  }

  render() {
    if (!this.requests.length) {
      replace(this.list, empty("No request yet: try the Console."));
    } else {
      replace(
        this.list,
        h(
          "table",
          { class: "requests" },
          h(
            "thead",
            {},
            h(
              "tr",
              {},
              ["#", "Time", "Kind", "Model", "Status", "Total", "Stages", ""].map((c) =>
                h("th", {}, c),
              ),
            ),
          ),
          h(
            "tbody",
            {},
            this.requests.map((r) => this.row(r)),
          ),
        ),
      );
    }
    const chosen = this.requests.find((r) => r.id === this.chosen);
    replace(
      this.detail,
      chosen
        ? h(
            "article",
            { class: "card" },
            h(
              "header",
              {},
              h("h3", {}, `Request ${chosen.id}: ${chosen.kind} on ${chosen.model}`),
              h(
                "button",
                { type: "button", class: "quiet", onclick: () => this.ctx.guard(this.open(null)) },
                "Close",
              ),
            ),
            timeline(chosen),
          )
        : null,
    );
  }

  row(r) {
    const t = r.timings || {};
    const stages = Object.keys(t)
      .filter((k) => k.endsWith("_ms") && k !== "total_ms" && typeof t[k] === "number")
      .sort((a, b) => rank(a) - rank(b) || a.localeCompare(b));
    const traced = Array.isArray(t.trace) && t.trace.length > 0;
    return h(
      "tr",
      { class: r.id === this.chosen ? "chosen" : "", dataset: { request: r.id } },
      h("td", { "data-label": "Request" }, r.id),
      h("td", { "data-label": "Time" }, clock(r.created)),
      h("td", { "data-label": "Kind" }, r.kind),
      h("td", { "data-label": "Model" }, r.model),
      h(
        "td",
        { "data-label": "Status", class: r.status === "ok" ? "" : "error", title: r.error || "" },
        r.status,
      ),
      h("td", { "data-label": "Total", class: "num" }, ms(t.total_ms)),
      h(
        "td",
        { class: "stages" },
        t.prompt_tokens !== undefined
          ? h("span", { class: "chip" }, `${t.prompt_tokens} → ${t.new_tokens ?? "?"} tokens`)
          : null,
        stages.map((k) => h("span", { class: "chip" }, `${k.replace(/_ms$/, "")} ${ms(t[k])}`)),
        t.decode_ms_per_token !== undefined
          ? h("span", { class: "chip" }, `decode ${ms(t.decode_ms_per_token)}/token`)
          : null,
        (t.failovers || []).length
          ? h("span", { class: "chip error" }, `${t.failovers.length} failover(s)`)
          : null,
      ),
      h(
        "td",
        {},
        traced
          ? h(
              "button",
              { type: "button", class: "quiet", onclick: () => this.ctx.guard(this.open(r.id)) },
              "Timeline",
            )
          : h(
              "span",
              { class: "muted", title: "no cluster step was traced for this request" },
              "–",
            ),
      ),
    );
  }
}

function rank(key) {
  const i = STAGES.indexOf(key);
  return i < 0 ? STAGES.length : i;
}
