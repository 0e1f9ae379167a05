// Home: the areas and their devices with their current state. A "home" event (any change,
// whoever made it: a spoken command, the API, Home Assistant, a timer) updates the device in
// place and flags it for a moment. Lights, switches and fans have controls.

import * as api from "./api.js";
import { empty, h, replace } from "./dom.js";

export class HomeView {
  constructor(root, ctx) {
    this.root = root;
    this.ctx = ctx;
    this.home = null;
    this.cards = new Map(); // device id -> its card element
    this.recent = new Map(); // device id -> {source, time} of its last change seen live
  }

  async refresh() {
    this.home = await api.get("/v1/home");
    this.render();
  }

  /** A pushed home event: patch the state, redraw the changed devices. */
  apply(event) {
    if (!this.home) return;
    if (event.kind !== "changes") {
      this.ctx.guard(this.refresh()); // timers: read them again
      return;
    }
    for (const c of event.changes) {
      const device = this.home.devices.find((d) => d.id === c.device);
      if (!device) continue;
      device.state = { ...device.state, [c.attribute]: c.new };
      this.recent.set(c.device, { source: event.source, time: event.time });
      const old = this.cards.get(c.device);
      if (old) {
        const card = this.card(device);
        card.classList.add("changed");
        old.replaceWith(card);
        this.cards.set(device.id, card);
        setTimeout(() => card.classList.remove("changed"), 2500);
      }
    }
  }

  render() {
    const home = this.home;
    this.cards.clear();
    const areas = [...home.areas, { id: null, name: "No area" }];
    const sections = areas
      .map((area) => {
        const devices = home.devices.filter((d) => d.area === area.id);
        if (!devices.length) return null;
        return h(
          "section",
          { class: "area", dataset: { area: area.id || "none" } },
          h("h3", {}, area.name),
          h(
            "div",
            { class: "grid devices" },
            devices.map((d) => {
              const card = this.card(d);
              this.cards.set(d.id, card);
              return card;
            }),
          ),
        );
      })
      .filter(Boolean);
    const timers = home.timers || [];
    replace(
      this.root,
      h("h2", {}, home.name),
      home.home_assistant
        ? h(
            "p",
            { class: "muted" },
            "Bridged to Home Assistant at ",
            home.home_assistant.url || "?",
            home.home_assistant.last_error
              ? h("span", { class: "error" }, ` (${home.home_assistant.last_error})`)
              : "",
          )
        : null,
      timers.length
        ? h(
            "div",
            { class: "card" },
            h("h3", {}, "Timers"),
            h(
              "ul",
              {},
              timers.map((t) =>
                h("li", {}, `${t.name || "timer"}: ${Math.round(t.remaining_s)} s left`),
              ),
            ),
          )
        : null,
      sections.length ? sections : empty("The home has no devices."),
    );
  }

  card(d) {
    const st = d.state || {};
    const on = st.on === true;
    const recent = this.recent.get(d.id);
    return h(
      "article",
      { class: `card hdevice ${d.domain}${on ? " is-on" : ""}`, dataset: { device: d.id } },
      h("header", {}, h("h4", {}, d.name), h("span", { class: "state" }, describe(d))),
      this.controls(d),
      recent ? h("p", { class: "muted small" }, `changed by ${recent.source}`) : null,
    );
  }

  controls(d) {
    const st = d.state || {};
    if (!["light", "switch", "fan"].includes(d.domain)) return null;
    const parts = [
      h(
        "label",
        { class: "toggle" },
        h("input", {
          type: "checkbox",
          role: "switch",
          checked: st.on === true,
          "aria-label": `${d.name} on`,
          onchange: (e) => this.set(d, { on: e.target.checked }),
        }),
        h("span", {}, st.on ? "On" : "Off"),
      ),
    ];
    const level = d.domain === "light" ? "brightness" : d.domain === "fan" ? "percentage" : null;
    if (level && st[level] !== undefined) {
      const shown = h("output", {}, `${st[level]}%`);
      parts.push(
        h(
          "label",
          { class: "level" },
          h("span", {}, level === "brightness" ? "Brightness" : "Speed"),
          h("input", {
            type: "range",
            min: 0,
            max: 100,
            step: 1,
            value: st[level],
            "aria-label": `${d.name} ${level}`,
            oninput: (e) => (shown.textContent = `${e.target.value}%`),
            onchange: (e) => this.set(d, { [level]: Number(e.target.value) }),
          }),
          shown,
        ),
      );
    }
    return h("div", { class: "controls" }, parts);
  }

  async set(device, values) {
    // The change comes back as a home event (and redraws the card); a refusal says why.
    await this.ctx.guard(api.post(`/v1/home/devices/${encodeURIComponent(device.id)}`, values));
  }
}

function describe(d) {
  const st = d.state || {};
  const pct = (v) => (v === undefined ? "" : ` ${v}%`);
  switch (d.domain) {
    case "light":
      return st.on ? `on${pct(st.brightness)}` : "off";
    case "switch":
      return st.on ? "on" : "off";
    case "fan":
      return st.on ? `on${pct(st.percentage)}` : "off";
    case "lock":
      return st.locked ? "locked" : "unlocked";
    case "cover":
      if (st.position !== undefined) return st.position > 0 ? `open ${st.position}%` : "closed";
      return st.open ? "open" : "closed";
    case "climate":
      return `${st.current_temperature ?? "?"}${st.unit || ""} → ${st.target_temperature ?? "?"}${st.unit || ""}`;
    case "media_player":
      return `${st.playing ? "playing" : "paused"}, volume ${st.volume ?? "?"}%`;
    case "sensor":
      return `${st.value ?? "?"} ${st.unit || ""}`.trim();
    default:
      return Object.entries(st)
        .map(([k, v]) => `${k} ${v}`)
        .join(", ");
  }
}
