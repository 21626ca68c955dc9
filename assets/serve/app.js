// The serve page. Everything it shows comes from the server: /info (the
// domain's dimensions, grid and value range), /signal (test signals),
// /predict (means, stds, samples) and /posterior (the exact posterior,
// where the domain has one). Plain JavaScript, no build step, no network
// beyond this server.
"use strict";

const $ = (id) => document.getElementById(id);
const state = {
  info: null,
  observed: [], // {position: [P], value: [V]}
  signal: null, // Float32Array: grid cells × V, x fastest
  slice: [], // index along each axis from 2 on
  mean: null,
  std: null,
  samples: [], // per sample: [[V] per query]
  posterior: null,
  busy: false,
  dirty: false,
  predictions: 0,
  drawn: 0,
  generation: 0, // counts changes to the observations
};
// For the browser tests, and for a look from the developer console.
window.pixelTransformer = state;

// ---------- helpers ----------

const centre = (i, n) => -1 + (2 * i + 1) / n;
const cellOf = (x, n) => Math.min(n - 1, Math.max(0, Math.floor(((x + 1) / 2) * n)));

function el(tag, attrs = {}, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (k === "text") e.textContent = v;
    else if (k.startsWith("on")) e.addEventListener(k.slice(2), v);
    else e.setAttribute(k, v);
  }
  for (const c of children) e.append(c);
  return e;
}

function labelled(text, input) {
  return el("label", {}, text + " ", input);
}

function status(message, isError = false) {
  const s = $("status");
  s.textContent = message;
  s.className = isError ? "error" : "";
}

// A small seeded generator (mulberry32): the page's random choices repeat
// with the same seed.
function rng(seed) {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

async function call(path, body) {
  const response = await fetch(path, body === undefined ? {} : {
    method: "POST",
    headers: { "Content-Type": "application/json" },
    body: JSON.stringify(body),
  });
  const json = await response.json().catch(() => ({ error: `HTTP ${response.status}` }));
  if (!response.ok) throw new Error(json.error || `HTTP ${response.status}`);
  return json;
}

function numberInput(id, value, attrs = {}) {
  return el("input", { id, type: "number", value: String(value), ...attrs });
}

const num = (id) => Number($(id).value);

// ---------- values and colours ----------

// Value → 0..1 on the domain's range.
function unit(v) {
  const [lo, hi] = state.info.value_range;
  return Math.min(1, Math.max(0, (v - lo) / (hi - lo)));
}

function fromUnit(u) {
  const [lo, hi] = state.info.value_range;
  return lo + u * (hi - lo);
}

// The channel shown where V is neither 1 (grey) nor 3 (colour).
function channel() {
  return $("channel") ? num("channel") : 0;
}

// Values on both sides of 0 (signed distances, say) are drawn with a
// diverging map, so that the zero level (a surface) shows: below 0 blue,
// 0 white, above 0 fading to black.
function diverging() {
  const [lo, hi] = state.info.value_range;
  return state.info.values !== 3 && lo < 0 && hi > 0;
}

function rgbOf(value) {
  const V = state.info.values;
  if (V === 3) return value.map((v) => Math.round(255 * unit(v)));
  const v = value[V === 1 ? 0 : channel()];
  if (diverging()) {
    const [lo, hi] = state.info.value_range;
    if (v < 0) {
      const t = Math.min(1, v / lo);
      return [255 - 225 * t, 255 - 165 * t, 255 - 55 * t].map(Math.round);
    }
    const g = Math.round(255 * (1 - Math.sqrt(Math.min(1, v / hi))));
    return [g, g, g];
  }
  const g = Math.round(255 * unit(v));
  return [g, g, g];
}

// A heat colour map (black, purple, orange, yellow) for the std.
const HEAT = [[0, 0, 4], [87, 16, 110], [188, 55, 84], [249, 142, 9], [252, 255, 164]];
function heat(u) {
  const x = Math.min(1, Math.max(0, u)) * (HEAT.length - 1);
  const i = Math.min(HEAT.length - 2, Math.floor(x));
  const f = x - i;
  return HEAT[i].map((c, k) => Math.round(c + f * (HEAT[i + 1][k] - c)));
}

function spread(std) {
  const V = state.info.values;
  if (V === 1) return std[0];
  if (V === 3) return (std[0] + std[1] + std[2]) / 3;
  return std[channel()];
}

// ---------- the grid and its slice ----------

function gridShape() {
  return state.info.grid;
}

// Positions of the cells of the slice shown (all of them for P = 1 and 2).
function sliceQueries() {
  const g = gridShape();
  const P = state.info.positions;
  if (P === 1) return Array.from({ length: g[0] }, (_, i) => [centre(i, g[0])]);
  const rest = state.slice.map((k, a) => centre(k, g[a + 2]));
  const out = [];
  for (let j = 0; j < g[1]; j++) {
    for (let i = 0; i < g[0]; i++) out.push([centre(i, g[0]), centre(j, g[1]), ...rest]);
  }
  return out;
}

// Flat grid index of a cell given per-axis indices.
function flatIndex(idx) {
  const g = gridShape();
  let f = 0;
  for (let a = g.length - 1; a >= 0; a--) f = f * g[a] + idx[a];
  return f;
}

function cellIndices(position) {
  const g = gridShape();
  return position.map((x, a) => cellOf(x, g[a]));
}

function signalAt(idx) {
  const V = state.info.values;
  const f = flatIndex(idx) * V;
  return Array.from(state.signal.subarray(f, f + V));
}

function inSlice(idx) {
  return state.slice.every((k, a) => idx[a + 2] === k);
}

// ---------- predictions ----------

function request(extra = {}) {
  return {
    positions: state.observed.map((o) => o.position),
    values: state.observed.map((o) => o.value),
    queries: sliceQueries(),
    ...extra,
  };
}

// One prediction in flight at a time; changes made meanwhile are sent
// together when it returns.
async function predict() {
  if (state.busy) {
    state.dirty = true;
    return;
  }
  state.busy = true;
  state.dirty = false;
  const started = performance.now();
  try {
    const answer = await call("/predict", request());
    state.mean = answer.mean;
    state.std = answer.std;
    if (state.info.exact_posterior && $("posterior").checked) {
      state.posterior = await call("/posterior", request());
    }
    const ms = Math.round(performance.now() - started);
    const warn = (answer.warnings || []).join("; ");
    status(`|S| = ${state.observed.length}: answered in ${ms} ms${warn ? " — " + warn : ""}`);
  } catch (e) {
    status(e.message, true);
  }
  state.busy = false;
  draw();
  state.predictions += 1;
  document.body.dataset.predictions = String(state.predictions);
  if (state.dirty) predict();
}

function changed() {
  state.generation += 1;
  $("count").textContent = String(state.observed.length);
  document.body.dataset.observed = String(state.observed.length);
  state.samples = [];
  predict();
}

async function drawSamples() {
  const n = Math.max(1, Math.min(16, num("sample-count")));
  const exact = $("sample-mode").value === "exact";
  const extra = {
    samples: 1,
    temperature: num("temperature"),
  };
  if (!exact) extra.autoregressive = Math.max(0, num("autoregressive"));
  const button = $("sample");
  button.disabled = true;
  state.samples = [];
  const started = performance.now();
  const generation = state.generation;
  try {
    for (let i = 0; i < n; i++) {
      status(`drawing sample ${i + 1} of ${n} (${exact ? "exact" : "hybrid"})…`);
      const answer = await call("/predict", request({ ...extra, seed: num("seed") + i }));
      // Samples of observations (or of a slice) since changed are stale.
      if (state.generation !== generation) throw new Error("the observations changed: sampling stopped");
      state.samples.push(answer.samples[0]);
      state.drawn += 1;
      draw();
      document.body.dataset.samples = String(state.drawn);
    }
    const s = ((performance.now() - started) / 1000).toFixed(1);
    status(`${n} ${exact ? "exact" : "hybrid"} samples in ${s} s`);
  } catch (e) {
    status(e.message, true);
  }
  button.disabled = false;
}

// ---------- observations ----------

function addObservation(position, value) {
  // One observation per cell: a new one replaces the old.
  const idx = cellIndices(position).join(",");
  if (state.info.positions > 1) {
    state.observed = state.observed.filter((o) => cellIndices(o.position).join(",") !== idx);
  }
  state.observed.push({ position, value });
}

function paintValue() {
  const V = state.info.values;
  if (V === 1) return [Number($("grey").value)];
  if (V === 3) {
    const hex = $("colour").value;
    return [1, 3, 5].map((k) => fromUnit(parseInt(hex.slice(k, k + 2), 16) / 255));
  }
  return Array.from({ length: V }, (_, c) => num(`value-${c}`));
}

function addRandom() {
  if (!state.signal) {
    status("load a test signal (or a PNG) first: random observations are read from it", true);
    return;
  }
  const g = gridShape();
  const cells = g.reduce((a, b) => a * b, 1);
  const taken = new Set(state.observed.map((o) => flatIndex(cellIndices(o.position))));
  const free = [];
  for (let f = 0; f < cells; f++) if (!taken.has(f)) free.push(f);
  const next = rng(num("seed") * 7919 + state.observed.length);
  const n = Math.min(free.length, Math.max(1, num("random-count")));
  for (let k = 0; k < n; k++) {
    const pick = k + Math.floor(next() * (free.length - k));
    [free[k], free[pick]] = [free[pick], free[k]];
    let f = free[k];
    const idx = g.map((size) => {
      const i = f % size;
      f = Math.floor(f / size);
      return i;
    });
    state.observed.push({ position: idx.map((i, a) => centre(i, g[a])), value: signalAt(idx) });
  }
  changed();
}

async function loadSignal() {
  try {
    const answer = await call(`/signal?seed=${num("signal-seed")}`);
    state.signal = Float32Array.from(answer.values);
    if ($("tool-reveal")) $("tool-reveal").checked = true;
    status(`test signal ${answer.seed} loaded: click to reveal its values`);
    draw();
  } catch (e) {
    status(e.message, true);
  }
}

function loadPng(file) {
  const image = new Image();
  image.onload = () => {
    const [w, h] = gridShape();
    const c = el("canvas", { width: w, height: h });
    const ctx = c.getContext("2d");
    ctx.imageSmoothingQuality = "high";
    ctx.drawImage(image, 0, 0, w, h);
    const px = ctx.getImageData(0, 0, w, h).data;
    const V = state.info.values;
    const values = new Float32Array(w * h * V);
    for (let i = 0; i < w * h; i++) {
      const [r, g, b] = [px[4 * i], px[4 * i + 1], px[4 * i + 2]].map((x) => x / 255);
      if (V === 3) [r, g, b].forEach((x, k) => (values[3 * i + k] = fromUnit(x)));
      else values[V * i] = fromUnit(0.299 * r + 0.587 * g + 0.114 * b);
    }
    state.signal = values;
    URL.revokeObjectURL(image.src);
    if ($("tool-reveal")) $("tool-reveal").checked = true;
    status(`${file.name} loaded as ${w}×${h}: click to reveal its pixels`);
    draw();
  };
  image.onerror = () => status(`${file.name} is not an image this browser can read`, true);
  image.src = URL.createObjectURL(file);
}

// ---------- drawing: images and slices ----------

function paintGrid(canvas, colourOf) {
  const [w, h] = gridShape();
  const ctx = canvas.getContext("2d");
  const image = ctx.createImageData(w, h);
  for (let i = 0; i < w * h; i++) {
    const c = colourOf(i);
    if (!c) continue;
    image.data.set([c[0], c[1], c[2], c[3] === undefined ? 255 : c[3]], 4 * i);
  }
  ctx.putImageData(image, 0, 0);
}

function drawImages() {
  const [w] = gridShape();
  const hidden = $("show-hidden").checked && state.signal;
  const observedHere = new Map();
  for (const o of state.observed) {
    const idx = cellIndices(o.position);
    if (inSlice(idx)) observedHere.set(idx[1] * w + idx[0], o.value);
  }
  paintGrid($("observed"), (i) => {
    const v = observedHere.get(i);
    if (v) return rgbOf(v);
    if (!hidden) return null;
    const idx = [i % w, Math.floor(i / w), ...state.slice];
    return [...rgbOf(signalAt(idx)), 70];
  });
  if (state.mean) paintGrid($("mean"), (i) => rgbOf(state.mean[i]));
  if (state.std) {
    const top = Math.max(1e-6, ...state.std.map(spread));
    paintGrid($("std"), (i) => heat(spread(state.std[i]) / top));
    $("std-caption").textContent = `std (per pixel; brightest = ${top.toPrecision(3)})`;
  }
  const row = $("samples");
  row.replaceChildren(
    ...state.samples.map((sample) => {
      const c = el("canvas", { class: "grid", width: String(w), height: String(gridShape()[1]) });
      paintGrid(c, (i) => rgbOf(sample[i]));
      return c;
    }),
  );
}

// ---------- drawing: 1-D plots ----------

const PLOT = { w: 760, h: 400, left: 48, right: 12, top: 12, bottom: 32 };

function plotRange() {
  const [lo, hi] = state.info.value_range;
  const pad = 0.25 * (hi - lo);
  let [a, b] = [lo - pad, hi + pad];
  for (const o of state.observed) {
    const v = o.value[channel()];
    a = Math.min(a, v);
    b = Math.max(b, v);
  }
  return [a, b];
}

function toPixel(x, y, range) {
  const px = PLOT.left + ((x + 1) / 2) * (PLOT.w - PLOT.left - PLOT.right);
  const py = PLOT.top + (1 - (y - range[0]) / (range[1] - range[0])) * (PLOT.h - PLOT.top - PLOT.bottom);
  return [px, py];
}

function fromPixel(px, py, range) {
  const x = ((px - PLOT.left) / (PLOT.w - PLOT.left - PLOT.right)) * 2 - 1;
  const y = range[0] + (1 - (py - PLOT.top) / (PLOT.h - PLOT.top - PLOT.bottom)) * (range[1] - range[0]);
  return [x, y];
}

function line(ctx, xs, ys, range) {
  ctx.beginPath();
  xs.forEach((x, i) => {
    const [px, py] = toPixel(x, ys[i], range);
    if (i === 0) ctx.moveTo(px, py);
    else ctx.lineTo(px, py);
  });
  ctx.stroke();
}

function band(ctx, xs, lower, upper, range) {
  ctx.beginPath();
  xs.forEach((x, i) => {
    const [px, py] = toPixel(x, upper[i], range);
    if (i === 0) ctx.moveTo(px, py);
    else ctx.lineTo(px, py);
  });
  for (let i = xs.length - 1; i >= 0; i--) ctx.lineTo(...toPixel(xs[i], lower[i], range));
  ctx.closePath();
  ctx.fill();
}

function drawPlot() {
  const canvas = $("plot");
  const ctx = canvas.getContext("2d");
  const range = plotRange();
  const c = channel();
  const xs = sliceQueries().map((q) => q[0]);
  ctx.fillStyle = "#fff";
  ctx.fillRect(0, 0, PLOT.w, PLOT.h);
  // Axes and ticks.
  ctx.strokeStyle = "#999";
  ctx.fillStyle = "#444";
  ctx.font = "12px sans-serif";
  ctx.lineWidth = 1;
  for (const x of [-1, -0.5, 0, 0.5, 1]) {
    const [px] = toPixel(x, range[0], range);
    ctx.fillText(String(x), px - 8, PLOT.h - 10);
    ctx.beginPath();
    ctx.moveTo(px, PLOT.top);
    ctx.lineTo(px, PLOT.h - PLOT.bottom);
    ctx.strokeStyle = "#eee";
    ctx.stroke();
  }
  const step = niceStep((range[1] - range[0]) / 6);
  for (let y = Math.ceil(range[0] / step) * step; y <= range[1]; y += step) {
    const [, py] = toPixel(-1, y, range);
    ctx.fillText(y.toFixed(step < 1 ? 1 : 0), 4, py + 4);
    ctx.beginPath();
    ctx.moveTo(PLOT.left, py);
    ctx.lineTo(PLOT.w - PLOT.right, py);
    ctx.strokeStyle = Math.abs(y) < step / 2 ? "#bbb" : "#eee";
    ctx.stroke();
  }
  if (state.signal && $("show-hidden").checked) {
    ctx.strokeStyle = "#aaa";
    ctx.setLineDash([2, 3]);
    line(ctx, xs, xs.map((_, i) => state.signal[i * state.info.values + c]), range);
    ctx.setLineDash([]);
  }
  if (state.mean) {
    const m = state.mean.map((v) => v[c]);
    const s = state.std.map((v) => v[c]);
    ctx.fillStyle = "rgba(52, 101, 164, 0.22)";
    band(ctx, xs, m.map((v, i) => v - 2 * s[i]), m.map((v, i) => v + 2 * s[i]), range);
    ctx.lineWidth = 1;
    state.samples.forEach((sample, k) => {
      ctx.strokeStyle = `hsl(${(k * 67 + 20) % 360}, 60%, 50%)`;
      line(ctx, xs, sample.map((v) => v[c]), range);
    });
    ctx.strokeStyle = "#3465a4";
    ctx.lineWidth = 2.5;
    line(ctx, xs, m, range);
  }
  if (state.posterior && $("posterior").checked) {
    const m = state.posterior.mean.map((v) => v[c]);
    const s = state.posterior.std.map((v) => v[c]);
    ctx.strokeStyle = "#e07000";
    ctx.lineWidth = 1.5;
    ctx.setLineDash([6, 4]);
    line(ctx, xs, m, range);
    ctx.setLineDash([2, 3]);
    line(ctx, xs, m.map((v, i) => v + 2 * s[i]), range);
    line(ctx, xs, m.map((v, i) => v - 2 * s[i]), range);
    ctx.setLineDash([]);
  }
  ctx.fillStyle = "#111";
  for (const o of state.observed) {
    const [px, py] = toPixel(o.position[0], o.value[c], range);
    ctx.beginPath();
    ctx.arc(px, py, 4, 0, 2 * Math.PI);
    ctx.fill();
  }
}

function niceStep(raw) {
  const p = Math.pow(10, Math.floor(Math.log10(raw)));
  return [1, 2, 5, 10].map((k) => k * p).find((s) => s >= raw);
}

function draw() {
  if (state.info.positions === 1) drawPlot();
  else drawImages();
}

// ---------- layout ----------

function controls() {
  const info = state.info;
  const P = info.positions;
  const V = info.values;
  const box = $("controls");
  const trainedMin = info.trained_observed ? info.trained_observed[0] : 16;
  const observed = el(
    "fieldset",
    {},
    el("legend", { text: "Observations" }),
    el("div", {}, "|S| = ", el("span", { id: "count", text: "0" })),
    el("button", { id: "clear", onclick: () => ((state.observed = []), changed()) }, "clear"),
    el("button", { id: "undo", onclick: () => (state.observed.pop(), changed()) }, "undo"),
    el("div", {}, labelled("add", numberInput("random-count", Math.max(16, trainedMin), { min: 1 })),
      el("button", { id: "random", onclick: addRandom }, "random " + (P === 1 ? "points" : "pixels"))),
    el("p", { class: "hint", text: P === 1
      ? "Click the plot to add a point; shift-click removes the nearest."
      : "Click or drag on the left image to observe pixels; shift-click removes one." }),
  );
  const signal = el(
    "fieldset",
    {},
    el("legend", { text: "Signal" }),
    labelled("test signal", numberInput("signal-seed", 0, { min: 0 })),
    el("button", { id: "load-signal", onclick: loadSignal }, "load"),
    el("div", {}, labelled("show it faintly", el("input", { id: "show-hidden", type: "checkbox", onchange: draw }))),
  );
  if (P === 2 && (V === 1 || V === 3)) {
    const file = el("input", { id: "png", type: "file", accept: "image/*" });
    file.addEventListener("change", () => file.files[0] && loadPng(file.files[0]));
    signal.append(el("div", {}, labelled("or a picture", file)));
  }
  const parts = [observed, signal];
  if (P >= 2) {
    const tool = el(
      "fieldset",
      {},
      el("legend", { text: "A click" }),
      labelled("reveals the signal", el("input", { id: "tool-reveal", type: "radio", name: "tool" })),
      labelled("paints", el("input", { id: "tool-paint", type: "radio", name: "tool", checked: "" })),
    );
    const [lo, hi] = info.value_range;
    if (V === 1) {
      const grey = el("input", { id: "grey", type: "range", min: String(lo), max: String(hi),
        step: String((hi - lo) / 255), value: String(hi) });
      tool.append(el("div", {}, labelled("grey", grey)));
    } else if (V === 3) {
      tool.append(el("div", {}, labelled("colour", el("input", { id: "colour", type: "color", value: "#ffffff" }))));
    } else {
      for (let c = 0; c < V; c++) tool.append(labelled(`v${c}`, numberInput(`value-${c}`, hi, { step: "any" })));
    }
    parts.push(tool);
    for (let a = 2; a < P; a++) {
      const n = info.grid[a];
      state.slice.push(Math.floor(n / 2));
      // The trait names no axes: the third is z for volumes, t for videos.
      const name = a === 2 ? "axis 2 (z or t)" : `axis ${a}`;
      const slider = el("input", { id: `slice-${a}`, type: "range", min: "0", max: String(n - 1),
        value: String(state.slice[a - 2]) });
      const shown = el("span", { text: `${state.slice[a - 2] + 1} of ${n}` });
      slider.addEventListener("input", () => {
        state.slice[a - 2] = Number(slider.value);
        state.generation += 1;
        shown.textContent = `${state.slice[a - 2] + 1} of ${n}`;
        state.samples = [];
        draw();
        predict();
      });
      parts.push(el("fieldset", {}, el("legend", { text: "Slice" }), labelled(name, slider), shown));
    }
  }
  if (P === 1 ? V > 1 : V !== 1 && V !== 3) {
    const select = el("select", { id: "channel", onchange: draw });
    for (let c = 0; c < V; c++) select.append(el("option", { value: String(c), text: `value ${c}` }));
    parts.push(el("fieldset", {}, el("legend", { text: "Shown" }), labelled("channel", select)));
  }
  const mode = el("select", { id: "sample-mode" },
    el("option", { value: "hybrid", text: "hybrid" }), el("option", { value: "exact", text: "exact" }));
  parts.push(
    el(
      "fieldset",
      {},
      el("legend", { text: "Samples" }),
      labelled("how many", numberInput("sample-count", 4, { min: 1, max: 16 })),
      labelled("mode", mode),
      labelled("drawn one by one (hybrid)", numberInput("autoregressive", Math.min(64, sliceQueries().length), { min: 0 })),
      labelled("temperature", numberInput("temperature", 1, { min: 0.05, step: 0.05 })),
      labelled("seed", numberInput("seed", 0, { min: 0 })),
      el("div", {}, el("button", { id: "sample", onclick: drawSamples }, "sample")),
      el("p", { class: "hint", text: "Exact sampling draws every value one network pass at a time; hybrid draws the first few so and gives the rest the mean." }),
    ),
  );
  if (info.exact_posterior) {
    parts.push(el("fieldset", {}, el("legend", { text: "Reference" }),
      labelled("exact posterior", el("input", { id: "posterior", type: "checkbox", checked: "", onchange: predict }))));
  }
  box.replaceChildren(...parts);
}

function views() {
  const info = state.info;
  const box = $("views");
  if (info.positions === 1) {
    const canvas = el("canvas", { id: "plot", class: "plot", width: String(PLOT.w), height: String(PLOT.h) });
    canvas.addEventListener("pointerdown", (e) => {
      const rect = canvas.getBoundingClientRect();
      const px = ((e.clientX - rect.left) / rect.width) * PLOT.w;
      const py = ((e.clientY - rect.top) / rect.height) * PLOT.h;
      const [x, y] = fromPixel(px, py, plotRange());
      if (e.shiftKey) {
        if (state.observed.length === 0) return;
        const d = state.observed.map((o) => Math.abs(o.position[0] - x));
        state.observed.splice(d.indexOf(Math.min(...d)), 1);
      } else {
        const value = Array.from({ length: info.values }, () => y);
        state.observed.push({ position: [Math.max(-1, Math.min(1, x))], value });
      }
      changed();
    });
    box.replaceChildren(
      el("figure", {}, canvas, el("figcaption", { text:
        "mean (blue) with its ±2σ band; samples (thin lines)" +
        (info.exact_posterior ? "; exact posterior mean and ±2σ (orange, dashed)" : "") })),
      el("div", { id: "samples" }),
    );
    return;
  }
  const [w, h] = info.grid;
  const grid = (id, extra = "") => el("canvas", { id, class: "grid " + extra, width: String(w), height: String(h) });
  const observed = grid("observed", "observed");
  const at = (e) => {
    const rect = observed.getBoundingClientRect();
    const i = Math.min(w - 1, Math.max(0, Math.floor(((e.clientX - rect.left) / rect.width) * w)));
    const j = Math.min(h - 1, Math.max(0, Math.floor(((e.clientY - rect.top) / rect.height) * h)));
    return [i, j, ...state.slice];
  };
  let dragging = false;
  let last = "";
  const touch = (e) => {
    const idx = at(e);
    // A drag reports many moves within one pixel: act once per pixel.
    if (e.type === "pointermove" && idx.join(",") === last) return;
    last = idx.join(",");
    const position = idx.map((i, a) => centre(i, info.grid[a]));
    if (e.shiftKey) {
      const key = idx.join(",");
      state.observed = state.observed.filter((o) => cellIndices(o.position).join(",") !== key);
    } else {
      const reveal = $("tool-reveal").checked && state.signal;
      addObservation(position, reveal ? signalAt(idx) : paintValue());
    }
    changed();
  };
  observed.addEventListener("pointerdown", (e) => {
    dragging = true;
    touch(e);
  });
  observed.addEventListener("pointermove", (e) => dragging && e.buttons && touch(e));
  window.addEventListener("pointerup", () => (dragging = false));
  const slice = info.positions > 2 ? " (this slice)" : "";
  box.replaceChildren(
    el("div", { class: "row" },
      el("figure", {}, observed, el("figcaption", { text: "observed" + slice })),
      el("figure", {}, grid("mean"), el("figcaption", { text: "mean" + slice +
        (diverging() ? " (below 0 blue, 0 white, above 0 grey to black)" : "") })),
      el("figure", {}, grid("std"), el("figcaption", { id: "std-caption", text: "std" }))),
    el("figure", {}, el("div", { id: "samples", class: "row" }), el("figcaption", { text: "samples" + slice })),
  );
}

async function start() {
  try {
    state.info = await call("/info");
  } catch (e) {
    status(`cannot reach the server: ${e.message}`, true);
    return;
  }
  const info = state.info;
  $("domain").textContent = info.domain;
  document.title = `pixel-transformer: ${info.domain}`;
  const trained = info.trained_observed ? `; trained with |S| ${info.trained_observed[0]} to ${info.trained_observed[1]}` : "";
  $("facts").textContent = `P = ${info.positions}, V = ${info.values}, grid ${info.grid.join(" × ")}, ` +
    `values ${info.value_range.map((v) => v.toPrecision(3)).join(" to ")}, ${info.model.parameters} parameters${trained}`;
  controls();
  views();
  document.body.dataset.ready = "1";
  changed();
}

start();
