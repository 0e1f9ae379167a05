// Devices: pairing (a one-time code, or approving a worker's request), the paired devices
// online and offline with their measured profile, "measure again" and "revoke".

import * as api from "./api.js";
import { ago, dot, empty, h, replace } from "./dom.js";

export class DevicesView {
  constructor(root, ctx) {
    this.root = root;
    this.ctx = ctx;
    this.code = null; // the last pairing code shown: {code, expires_at, ca_fingerprint}
    this.armed = new Set(); // devices whose "revoke" was pressed once (asks again)
    this.codeTimer = setInterval(() => this.tickCode(), 1000);
    this.pairing = h("div", { class: "card pairing" });
    this.pending = h("div");
    this.discovered = h("div");
    this.paired = h("div", { class: "grid" });
    replace(
      root,
      h("h2", {}, "Add a device"),
      this.pairing,
      h("h2", {}, "Pending pairing requests"),
      this.pending,
      h("h2", {}, "Paired devices"),
      this.paired,
      h("h2", {}, "Seen on the network, not paired"),
      this.discovered,
    );
    this.renderPairing();
  }

  close() {
    clearInterval(this.codeTimer);
  }

  async refresh() {
    const [devices, requests] = await Promise.all([
      api.get("/v1/devices"),
      api.get("/v1/pairing/requests"),
    ]);
    this.renderPending(requests);
    this.renderPaired(devices.filter((d) => d.paired));
    this.renderDiscovered(devices.filter((d) => !d.paired));
  }

  // ----- pairing -----

  async newCode() {
    const answer = await api.post("/v1/pairing/codes");
    this.code = { ...answer, expires_at: Date.now() + answer.expires_in_s * 1000 };
    this.renderPairing();
  }

  renderPairing() {
    const gateway = location.origin;
    const parts = [
      h(
        "p",
        {},
        "Run the worker on the new device with a one-time code, or start it without one: ",
        "its request then appears below, to approve here.",
      ),
      h(
        "button",
        { type: "button", id: "new-code", onclick: () => this.ctx.guard(this.newCode()) },
        this.code ? "Show a new code" : "Show a pairing code",
      ),
    ];
    if (this.code) {
      const command =
        `galaxy worker --gateway ${gateway} --name NEW-DEVICE-NAME ` +
        `--pairing-code ${this.code.code} --ca-fingerprint ${this.code.ca_fingerprint}`;
      this.codeLeft = h("span", { class: "muted" });
      parts.push(
        h(
          "dl",
          { class: "code" },
          h("dt", {}, "Code"),
          h("dd", { class: "big", id: "pairing-code" }, this.code.code, " ", this.codeLeft),
          h("dt", {}, "Home CA fingerprint (SHA-256)"),
          h("dd", { class: "mono wrap", id: "ca-fingerprint" }, this.code.ca_fingerprint),
          h("dt", {}, "On the new device"),
          h("dd", {}, h("pre", { class: "command", id: "pair-command" }, command)),
        ),
        h(
          "button",
          {
            type: "button",
            class: "quiet",
            onclick: () =>
              navigator.clipboard
                ?.writeText(command)
                .then(() => this.ctx.toast("Command copied"))
                .catch(() => this.ctx.toast("Copy it by hand: the clipboard is not available")),
          },
          "Copy the command",
        ),
      );
    }
    parts.push(
      h(
        "p",
        { class: "muted" },
        "Without a code: ",
        h("code", {}, `galaxy worker --gateway ${gateway} --name NEW-DEVICE-NAME`),
      ),
    );
    replace(this.pairing, parts);
    this.tickCode();
  }

  tickCode() {
    if (!this.code || !this.codeLeft) return;
    const left = Math.round((this.code.expires_at - Date.now()) / 1000);
    this.codeLeft.textContent = left > 0 ? `valid ${left} s more` : "expired: show a new code";
  }

  // ----- pending requests -----

  renderPending(requests) {
    if (!requests.length) {
      replace(this.pending, empty("No device is waiting to be paired."));
      return;
    }
    replace(
      this.pending,
      h(
        "ul",
        { class: "rows" },
        requests.map((r) =>
          h(
            "li",
            { class: "row", dataset: { request: r.name } },
            h("strong", {}, r.name),
            h("span", { class: "muted mono" }, `request ${r.id.slice(0, 8)}…`),
            h(
              "span",
              { class: "actions" },
              h("button", { type: "button", onclick: () => this.settle(r, "approve") }, "Approve"),
              h(
                "button",
                { type: "button", class: "danger", onclick: () => this.settle(r, "deny") },
                "Deny",
              ),
            ),
          ),
        ),
      ),
    );
  }

  async settle(request, verdict) {
    await this.ctx.guard(
      api.post(`/v1/pairing/requests/${encodeURIComponent(request.id)}/${verdict}`).then(() => {
        this.ctx.toast(`${request.name}: ${verdict === "approve" ? "approved" : "denied"}`);
      }),
    );
    await this.ctx.guard(this.refresh());
  }

  // ----- paired devices -----

  renderPaired(devices) {
    if (!devices.length) {
      replace(
        this.paired,
        empty("No device is paired yet: the gateway computes alone, in-process."),
      );
      return;
    }
    replace(
      this.paired,
      devices.map((d) => this.deviceCard(d)),
    );
  }

  deviceCard(d) {
    const state = d.revoked ? "revoked" : d.online ? "online" : "offline";
    const p = d.profile || {};
    const gflops = Object.entries(p.gflops || {});
    const facts = h(
      "dl",
      { class: "facts" },
      h("dt", {}, "Compute"),
      h(
        "dd",
        {},
        gflops.length
          ? gflops.map(([model, g]) =>
              h("div", {}, `${g} GFLOP/s `, h("span", { class: "muted" }, model)),
            )
          : h("span", { class: "muted" }, d.online ? "being measured" : "measured when online"),
      ),
      h("dt", {}, "Memory"),
      h("dd", {}, p.memory_mb ? `${(p.memory_mb / 1024).toFixed(1)} GB free` : "–"),
      h("dt", {}, "Threads"),
      h("dd", {}, p.threads ?? "–"),
      h("dt", {}, "Ring link"),
      h(
        "dd",
        {},
        p.link_mbps !== undefined
          ? `${p.link_mbps} Mbit/s, ${p.link_latency_ms} ms`
          : h("span", { class: "muted" }, "not measured (measured when the planner chooses)"),
      ),
      h("dt", {}, d.online ? "Paired" : "Last seen"),
      h("dd", {}, d.online ? ago(d.paired_at) : ago(d.last_seen)),
    );
    const armed = this.armed.has(d.name);
    const actions = h(
      "div",
      { class: "actions" },
      h(
        "button",
        {
          type: "button",
          disabled: !d.online,
          title: d.online ? "measure compute and links again, then re-plan" : "offline",
          onclick: () => this.measure(d.name),
        },
        "Measure again",
      ),
      d.revoked
        ? null
        : h(
            "button",
            {
              type: "button",
              class: armed ? "danger armed" : "danger",
              onclick: () => this.revoke(d.name),
            },
            armed ? "Really revoke?" : "Revoke",
          ),
    );
    return h(
      "article",
      { class: `card device ${state}`, dataset: { device: d.name } },
      h(
        "header",
        {},
        dot(d.name),
        h("h3", {}, d.name),
        h("span", { class: `badge ${state}` }, state),
      ),
      facts,
      actions,
    );
  }

  async measure(name) {
    await this.ctx.guard(
      api.post(`/v1/devices/${encodeURIComponent(name)}/profile`).then(() => {
        this.ctx.toast(`${name}: measuring again; the plans follow`);
      }),
    );
  }

  async revoke(name) {
    if (!this.armed.has(name)) {
      this.armed.add(name);
      setTimeout(() => {
        if (this.armed.delete(name)) this.ctx.guard(this.refresh()); // disarm after 5 s
      }, 5000);
      await this.ctx.guard(this.refresh());
      return;
    }
    this.armed.delete(name);
    await this.ctx.guard(
      api.post(`/v1/devices/${encodeURIComponent(name)}/revoke`).then(() => {
        this.ctx.toast(`${name} is revoked: its certificate is refused from now on`);
      }),
    );
    await this.ctx.guard(this.refresh());
  }

  // ----- discovered -----

  renderDiscovered(devices) {
    if (!devices.length) {
      replace(this.discovered, empty("No unpaired worker is announcing itself (mDNS)."));
      return;
    }
    replace(
      this.discovered,
      h(
        "ul",
        { class: "rows" },
        devices.map((d) =>
          h(
            "li",
            { class: "row", dataset: { discovered: d.name } },
            h("strong", {}, d.name),
            h("span", { class: "muted" }, "show a code above, or approve its request when it asks"),
          ),
        ),
      ),
    );
  }
}
