// The server panel: /system-status (with the key: workers, GPUs and their memory, CPU, RAM), or
// the public /ready (worker states only) while no key is set. Refreshed on demand and every few
// seconds while the page is visible.

import { ApiError, callJson } from "./api.js";

const REFRESH_MS = 5000;

function cell(row, text, className = "") {
  const td = row.insertCell();
  td.textContent = text;
  if (className) td.className = className;
  return td;
}

function gb(value) {
  return `${Number(value).toFixed(1)} GB`;
}

export class StatusPanel {
  /**
   * `elements`: {summary, workers (tbody), gpus (ul), host, message, refresh}; `key()` reads the
   * key; `onModel(model)` sees /system-status's `model` (null until a worker has loaded one).
   */
  constructor(elements, key, onModel = () => {}) {
    this.el = elements;
    this.key = key;
    this.onModel = onModel;
    this.paused = false; // after a refused key: no polling until the key changes
    this.el.refresh.addEventListener("click", () => this.refresh());
  }

  start() {
    setInterval(() => {
      if (document.visibilityState === "visible" && !this.paused) this.refresh();
    }, REFRESH_MS);
    document.addEventListener("visibilitychange", () => {
      if (document.visibilityState === "visible" && !this.paused) this.refresh();
    });
    return this.refresh();
  }

  keyChanged() {
    this.paused = false;
    return this.refresh();
  }

  async refresh() {
    try {
      if (this.key()) this.renderStatus(await callJson("system-status", { key: this.key() }));
      else this.renderReady(await this.ready());
      this.say("");
    } catch (error) {
      if (error instanceof ApiError && error.isAuth) this.paused = true;
      this.say(error.message, true);
    }
  }

  async ready() {
    // 503 while loading is an answer too: its body says why.
    const response = await fetch("ready").catch(() => null);
    if (!response) throw new ApiError("Cannot reach the server.");
    return response.json();
  }

  say(text, isError = false) {
    this.el.message.textContent = text;
    this.el.message.classList.toggle("error", isError);
  }

  renderReady(body) {
    this.el.summary.textContent = `${body.ready ? "Ready" : "Not ready"}: ${body.reason}.`;
    this.renderWorkers(body.workers);
    this.el.gpus.replaceChildren();
    this.el.host.textContent = "Enter the API key to see GPU memory, CPU and RAM.";
  }

  renderStatus(status) {
    const service = status.service;
    const state = service.ready ? "Ready" : "Not ready";
    this.el.summary.textContent =
      `${state}: ${service.reason}. ${service.active_requests} of ${service.capacity} ` +
      `slots busy, ${service.queued_requests} queued.`;
    this.renderWorkers(status.workers);
    this.renderGpus(status.gpus);
    this.onModel(status.model ?? null);
    const cpu = status.cpu;
    this.el.host.textContent =
      `CPU ${cpu.utilization_percent}% of ${cpu.cores} cores · ` +
      `RAM ${gb(cpu.ram_gb.used)} of ${gb(cpu.ram_gb.total)} used`;
  }

  renderWorkers(workers) {
    const body = this.el.workers;
    body.replaceChildren();
    for (const worker of workers) {
      const row = body.insertRow();
      cell(row, worker.worker_id);
      cell(row, worker.state, `state state-${worker.state}`);
      cell(row, worker.device ?? "–");
      const busy = worker.capacity === undefined ? "–" : `${worker.active_requests} / ${worker.capacity}`;
      cell(row, busy);
      if (worker.error) row.title = worker.error;
    }
  }

  renderGpus(gpus) {
    const list = this.el.gpus;
    list.replaceChildren();
    if (!gpus.length) {
      const item = document.createElement("li");
      item.textContent = "No GPU: the workers run on the CPU.";
      list.append(item);
      return;
    }
    for (const gpu of gpus) list.append(this.gpuItem(gpu));
  }

  gpuItem(gpu) {
    const item = document.createElement("li");
    const label = document.createElement("span");
    if (gpu.error) {
      label.textContent = `GPU ${gpu.device_id}: cannot be read (${gpu.error})`;
      item.append(label);
      return item;
    }
    const memory = gpu.memory_gb;
    label.textContent =
      `GPU ${gpu.device_id} ${gpu.name}: ${gb(memory.used)} of ${gb(memory.total)} memory used, ` +
      `${gpu.utilization_percent.gpu}% busy`;
    const meter = document.createElement("meter");
    meter.min = 0;
    meter.max = memory.total;
    meter.value = memory.used;
    meter.high = memory.total * 0.9;
    meter.setAttribute("aria-label", `GPU ${gpu.device_id} memory used`);
    item.append(label, meter);
    return item;
  }
}
