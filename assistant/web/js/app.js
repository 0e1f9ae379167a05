// The dashboard's frame: log in, switch views, keep them live.
//
// Nothing but the login form is shown until the API accepts the token (GET /v1/devices).
// Then every view loads its data, and the events websocket keeps them current: "home"
// events update the Home view in place, "request" events reload the request log (and the
// measured latencies of the Plan view), "cluster" events reload devices, pairing requests and
// plans. A 401 anywhere logs out.

import * as api from "./api.js";
import { ConsoleView } from "./console.js";
import { DevicesView } from "./devices.js";
import { HomeView } from "./home.js";
import { PlanView } from "./plan.js";
import { RequestsView } from "./requests.js";

const $ = (id) => document.getElementById(id);

class Dashboard {
  constructor() {
    this.views = {};
    this.stopEvents = null;
    this.toastTimer = null;
  }

  start() {
    $("login-form").addEventListener("submit", (event) => {
      event.preventDefault();
      this.login($("token-input").value.trim());
    });
    $("logout").addEventListener("click", () => this.logout(""));
    window.addEventListener("hashchange", () => this.show());
    if (api.token()) this.login(api.token());
  }

  async login(token) {
    $("login-error").textContent = "";
    $("login-button").disabled = true;
    try {
      await api.get("/v1/devices", { tokenOverride: token });
      api.setToken(token);
      this.enter();
    } catch (error) {
      api.setToken(null);
      $("login-error").textContent =
        error instanceof api.Unauthorized
          ? "The gateway refused this token."
          : `The gateway did not answer: ${error.message}`;
    } finally {
      $("login-button").disabled = false;
    }
  }

  logout(message) {
    api.setToken(null);
    if (this.stopEvents) this.stopEvents();
    this.stopEvents = null;
    for (const view of Object.values(this.views)) view.close?.();
    this.views = {};
    for (const section of document.querySelectorAll(".view")) section.replaceChildren();
    $("app").hidden = true;
    $("login").hidden = false;
    $("token-input").value = "";
    $("login-error").textContent = message;
  }

  enter() {
    $("login").hidden = true;
    $("app").hidden = false;
    const ctx = { toast: (text) => this.toast(text), guard: (p) => this.guard(p) };
    this.views = {
      devices: new DevicesView($("view-devices"), ctx),
      plan: new PlanView($("view-plan"), ctx),
      requests: new RequestsView($("view-requests"), ctx),
      home: new HomeView($("view-home"), ctx),
      console: new ConsoleView($("view-console"), ctx),
    };
    this.views.console.onTimeline = (id) => {
      location.hash = "#requests";
      this.guard(this.views.requests.open(id));
    };
    for (const view of Object.values(this.views)) this.guard(view.refresh());
    this.stopEvents = api.events(
      (event) => this.dispatch(event),
      (state) => {
        $("live").textContent = state === "open" ? "live" : "offline";
        $("live").classList.toggle("on", state === "open");
        if (state === "open") this.refreshAll(); // catch up with what happened meanwhile
      },
    );
    this.show();
  }

  refreshAll() {
    for (const view of Object.values(this.views)) this.guard(view.refresh());
  }

  dispatch(event) {
    const v = this.views;
    if (event.type === "home") v.home?.apply(event);
    else if (event.type === "request") {
      this.guard(v.requests?.refresh());
      this.guard(v.plan?.refreshMeasured());
    } else if (event.type === "cluster") {
      this.guard(v.devices?.refresh());
      this.guard(v.plan?.refresh());
    } else if (event.type === "resync") this.refreshAll();
  }

  /** Run a promise; a 401 logs out, any other failure shows as a toast. */
  async guard(promise) {
    try {
      return await promise;
    } catch (error) {
      if (error instanceof api.Unauthorized)
        this.logout("The gateway no longer accepts this token.");
      else this.toast(error.message);
      return undefined;
    }
  }

  show() {
    const name = location.hash.slice(1) in this.views ? location.hash.slice(1) : "devices";
    for (const [key, view] of Object.entries(this.views)) view.root.hidden = key !== name;
    for (const link of document.querySelectorAll("#nav a")) {
      link.classList.toggle("active", link.dataset.view === name);
      if (link.dataset.view === name) link.setAttribute("aria-current", "page");
      else link.removeAttribute("aria-current");
    }
  }

  toast(text) {
    const el = $("toast");
    el.textContent = text;
    el.hidden = false;
    clearTimeout(this.toastTimer);
    this.toastTimer = setTimeout(() => (el.hidden = true), 8000);
  }
}

new Dashboard().start();
