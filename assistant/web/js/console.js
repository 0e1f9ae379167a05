// Console: type a request or record one with the microphone; see what the assistant heard,
// understood and did, read its reply and play it. "Ask the model" sends the text to the
// served generative model instead (POST /v1/generate): a request that runs on the cluster,
// so its timeline per device can be opened.

import * as api from "./api.js";
import { empty, h, ms, replace } from "./dom.js";
import { Recorder, microphoneAvailable } from "./recorder.js";

const MAX_SECONDS = 25; // below the gateway's default 30 s limit on a recording

export class ConsoleView {
  constructor(root, ctx) {
    this.root = root;
    this.ctx = ctx;
    this.onTimeline = null; // set by the app: open a request's timeline
    this.recorder = null;
    this.audioUrl = null;
    this.input = h("input", {
      id: "console-text",
      type: "text",
      placeholder: "turn on the kitchen lights",
      autocomplete: "off",
      "aria-label": "request",
    });
    this.mode = h(
      "select",
      { id: "console-mode", "aria-label": "send to" },
      h("option", { value: "assist" }, "the assistant"),
      h("option", { value: "generate" }, "the model (on the cluster)"),
    );
    this.send = h("button", { type: "submit", id: "console-send" }, "Send");
    this.mic = h(
      "button",
      { type: "button", id: "console-mic", onclick: () => this.toggleMic() },
      "Record",
    );
    this.status = h("p", { id: "console-status", class: "muted", role: "status" });
    this.result = h("div", { id: "console-result" }, empty("The answer shows here."));
    const form = h(
      "form",
      {
        class: "card console",
        onsubmit: (e) => {
          e.preventDefault();
          this.ctx.guard(this.submit());
        },
      },
      h("div", { class: "line" }, this.input, this.send),
      h("div", { class: "line" }, h("label", {}, "Send to ", this.mode), this.mic),
      microphoneAvailable()
        ? null
        : h(
            "p",
            { class: "muted" },
            "The microphone needs https:// or http://localhost (a browser rule).",
          ),
      this.status,
    );
    replace(root, h("h2", {}, "Console"), form, this.result);
  }

  async refresh() {}

  busy(text) {
    this.status.textContent = text || "";
    this.send.disabled = Boolean(text);
  }

  async submit() {
    const text = this.input.value.trim();
    if (!text) return;
    this.busy("Working…");
    try {
      if (this.mode.value === "generate") {
        const answer = await api.post("/v1/generate", { prompt: text, max_new_tokens: 48 });
        this.showGenerated(answer);
      } else {
        await this.showTurn(await api.post("/v1/assist", { text }));
      }
    } finally {
      this.busy("");
    }
  }

  async toggleMic() {
    if (this.recorder) {
      const recorder = this.recorder;
      this.recorder = null;
      clearInterval(this.ticker);
      this.mic.textContent = "Record";
      this.mic.classList.remove("recording");
      const blob = await recorder.stop();
      this.busy(`Sent ${(blob.size / 1024).toFixed(0)} KB of audio; working…`);
      try {
        await this.ctx.guard(
          api
            .call("POST", "/v1/assist/audio", blob, { contentType: "audio/wav" })
            .then((t) => this.showTurn(t)),
        );
      } finally {
        this.busy("");
      }
      return;
    }
    const recorder = new Recorder();
    try {
      await recorder.start();
    } catch (error) {
      this.ctx.toast(`Cannot record: ${error.message}`);
      return;
    }
    this.recorder = recorder;
    this.mic.textContent = "Stop";
    this.mic.classList.add("recording");
    this.ticker = setInterval(() => {
      const s = recorder.seconds();
      this.status.textContent = `Recording… ${s.toFixed(0)} s (press Stop when done)`;
      if (s >= MAX_SECONDS && this.recorder === recorder) this.toggleMic();
    }, 250);
  }

  async showTurn(turn) {
    const intent = turn.intent;
    const rows = [
      [
        "Heard",
        turn.transcript
          ? [
              h("span", { class: "transcript" }, turn.transcript),
              turn.heard?.first_guess
                ? h("span", { class: "muted" }, ` (first heard as "${turn.heard.first_guess}")`)
                : "",
            ]
          : h("span", { class: "muted" }, turn.heard ? `nothing (${turn.heard.reason})` : "(typed)"),
      ],
      [
        "Intent",
        intent
          ? [
              h("strong", {}, intent.name),
              ` via ${intent.source}`,
              intent.confidence !== undefined && intent.confidence !== null
                ? ` (${Number(intent.confidence).toFixed(2)})`
                : "",
              Object.keys(intent.slots || {}).length
                ? h("div", { class: "mono small" }, JSON.stringify(intent.slots))
                : null,
            ]
          : h("span", { class: "muted" }, "none"),
      ],
      [
        "Home",
        turn.changes.length
          ? h(
              "ul",
              { class: "changes" },
              turn.changes.map((c) =>
                h(
                  "li",
                  { dataset: { device: c.device } },
                  `${c.device}: ${c.attribute} ${fmt(c.old)} → ${fmt(c.new)}`,
                ),
              ),
            )
          : h("span", { class: "muted" }, "no change"),
      ],
      ["Reply", h("span", { id: "reply-text" }, turn.reply.text)],
    ];
    const audio = h("audio", { id: "reply-audio", controls: true, preload: "auto" });
    const result = h(
      "article",
      { class: "card turn", dataset: { request: turn.request_id } },
      h(
        "dl",
        { class: "facts" },
        rows.map(([k, v]) => [h("dt", {}, k), h("dd", {}, v)]),
      ),
      turn.reply.audio_url ? audio : null,
      h(
        "p",
        { class: "stages" },
        Object.entries(turn.timings).map(([k, v]) =>
          h("span", { class: "chip" }, `${k.replace(/_ms$/, "")} ${ms(v)}`),
        ),
      ),
    );
    replace(this.result, result);
    if (turn.reply.audio_url) await this.load(audio, turn.reply.audio_url);
  }

  /** An <audio src> cannot carry the token: fetch the WAV with it, play it from memory. */
  async load(audio, path) {
    const response = await api.get(path, { raw: true });
    if (this.audioUrl) URL.revokeObjectURL(this.audioUrl);
    this.audioUrl = URL.createObjectURL(await response.blob());
    audio.src = this.audioUrl;
    audio.dataset.loaded = "true";
  }

  showGenerated(answer) {
    replace(
      this.result,
      h(
        "article",
        { class: "card turn" },
        h(
          "dl",
          { class: "facts" },
          h("dt", {}, "Model"),
          h("dd", {}, answer.model),
          h("dt", {}, "Reply"),
          h("dd", { id: "reply-text" }, answer.text),
          h("dt", {}, "Plan"),
          h("dd", {}, `${answer.plan.strategy} on ${answer.plan.devices.join(", ")}`),
        ),
        h(
          "p",
          { class: "stages" },
          ["total_ms", "queue_ms", "prefill_ms"]
            .filter((k) => answer.timings[k] !== undefined)
            .map((k) =>
              h("span", { class: "chip" }, `${k.replace(/_ms$/, "")} ${ms(answer.timings[k])}`),
            ),
          answer.timings.decode_ms_per_token !== undefined
            ? h("span", { class: "chip" }, `decode ${ms(answer.timings.decode_ms_per_token)}/token`)
            : null,
        ),
        h(
          "button",
          {
            type: "button",
            id: "open-timeline",
            onclick: () => this.ctx.guard(this.openTimeline(answer)),
          },
          "Open its timeline",
        ),
      ),
    );
  }

  async openTimeline(answer) {
    // The request log's entry for this answer: the generate request with its total time.
    const log = await api.get("/v1/requests?limit=50");
    const entry = log.find(
      (r) => r.kind === "generate" && r.timings?.total_ms === answer.timings.total_ms,
    );
    if (!entry) throw new Error("this request is no longer in the last 50 of the request log");
    this.onTimeline?.(entry.id);
  }
}

function fmt(value) {
  return value === null || value === undefined ? "–" : String(value);
}
