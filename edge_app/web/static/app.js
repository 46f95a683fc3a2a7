// The page of `digits serve`: the live view, the reading and its history, the draw pad, photo uploads.
// No framework and no build step: the device serves this file as it is.
"use strict";

const $ = (id) => document.getElementById(id);
const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));
const nowMs = () => performance.timeOrigin + performance.now();  // Unix ms, finer than Date.now()

// What this page measured, read by the tests and the benchmark (tests/bench_serve.py).
const live = { frames: 0, lastIndex: -1, delays: [], shown: [] };
window.digitsLive = live;

for (const element of document.querySelectorAll(".origin")) element.textContent = location.origin + "/";

// ---- Live view: /stream.mjpg read with fetch rather than an <img>, so that each part's X-Timestamp says how
// far behind the camera the picture is, and only the newest frame is decoded when frames come faster.
const liveCanvas = $("live");
const liveContext = liveCanvas.getContext("2d");
let newest = null;
let decoding = false;
let streamAbort = null;

const CRLF2 = [13, 10, 13, 10];

function indexOfHeaderEnd(bytes) {
  for (let i = 0; i + 3 < bytes.length && i < 4096; i++) {
    if (bytes[i] === 13 && bytes[i + 1] === 10 && bytes[i + 2] === 13 && bytes[i + 3] === 10) return i;
  }
  return -1;
}

function concat(a, b) {
  const joined = new Uint8Array(a.length + b.length);
  joined.set(a, 0);
  joined.set(b, a.length);
  return joined;
}

async function readParts(reader) {
  let buffered = new Uint8Array(0);
  for (;;) {
    const { value, done } = await reader.read();
    if (done) return;
    buffered = concat(buffered, value);
    for (;;) {
      const end = indexOfHeaderEnd(buffered);
      if (end < 0) break;
      const headers = {};
      for (const line of new TextDecoder().decode(buffered.subarray(0, end)).split("\r\n")) {
        const colon = line.indexOf(":");
        if (colon > 0) headers[line.slice(0, colon).trim().toLowerCase()] = line.slice(colon + 1).trim();
      }
      const length = parseInt(headers["content-length"], 10);
      const start = end + CRLF2.length;
      if (!(length >= 0)) throw new Error("a part without Content-Length");
      if (buffered.length < start + length) break;
      newest = { jpeg: buffered.slice(start, start + length), index: parseInt(headers["x-frame"], 10),
                 stamp: parseFloat(headers["x-timestamp"]) * 1000 };
      buffered = buffered.slice(start + length);
      if (!decoding) showNewest();
    }
  }
}

async function showNewest() {
  decoding = true;
  try {
    while (newest) {
      const part = newest;
      newest = null;
      const bitmap = await createImageBitmap(new Blob([part.jpeg], { type: "image/jpeg" }));
      if (liveCanvas.width !== bitmap.width || liveCanvas.height !== bitmap.height) {
        liveCanvas.width = bitmap.width;
        liveCanvas.height = bitmap.height;
      }
      liveContext.drawImage(bitmap, 0, 0);
      bitmap.close();
      const shownAt = nowMs();
      live.frames += 1;
      live.lastIndex = part.index;
      live.delays.push(shownAt - part.stamp);
      live.shown.push(shownAt);
      if (live.delays.length > 1000) { live.delays.shift(); live.shown.shift(); }
      if (serverState !== "reconnecting") $("live-note").hidden = true;
    }
  } catch (error) {
    console.warn("frame not shown:", error);
  } finally {
    decoding = false;
  }
}

async function followStream() {
  for (;;) {
    if (document.hidden) { await sleep(500); continue; }  // a hidden tab takes no frames (and frees the server's)
    streamAbort = new AbortController();
    try {
      const response = await fetch("stream.mjpg", { cache: "no-store", signal: streamAbort.signal });
      if (!response.ok) throw new Error((await response.json()).error || `HTTP ${response.status}`);
      await readParts(response.body.getReader());
    } catch (error) {
      if (error.name !== "AbortError") note(`live view: ${error.message}; trying again`);
    }
    await sleep(1000);
  }
}

document.addEventListener("visibilitychange", () => { if (document.hidden && streamAbort) streamAbort.abort(); });

setInterval(() => {
  const now = nowMs();
  const recent = live.shown.filter((t) => now - t < 2000);
  $("live-fps").textContent = recent.length ? (recent.length / 2).toFixed(0) : "0";
  const delays = live.delays.slice(-recent.length || -1).slice().sort((a, b) => a - b);
  $("live-delay").textContent = recent.length ? delays[Math.floor(delays.length / 2)].toFixed(0) : "-";
}, 1000);

function note(text) {
  $("live-note").textContent = text;
  $("live-note").hidden = false;
}

// ---- Status and readings: /events (Server-Sent Events), the same objects as `digits run --format jsonl`.
let serverState = "starting";
let shownReading = null;
const reading = { last: null };  // the newest frame's object, for the tests
window.digitsReading = reading;

function setStatus(status) {
  serverState = status.state;
  const badge = $("status");
  badge.textContent = status.state;
  badge.title = status.message || "";
  badge.className = `status ${status.state}`;
  if (status.state === "reconnecting") note(`reconnecting: ${status.message}`);
  else if (status.state === "failed") note(status.message);
  else if (live.frames) $("live-note").hidden = true;
}

function addHistory(entry) {
  const item = document.createElement("li");
  const time = document.createElement("span");
  time.className = "time";
  time.textContent = new Date(entry.time * 1000).toLocaleTimeString();
  item.append(time, entry.text.replaceAll("\n", " / "));
  $("history").prepend(item);
  while ($("history").children.length > 50) $("history").lastChild.remove();
}

function showReading(frame) {
  reading.last = frame;
  $("frame-text").textContent = frame.text ? frame.text.replaceAll("\n", " / ") : "(no digit)";
  if (frame.stable_text !== shownReading) {
    shownReading = frame.stable_text;
    $("reading").textContent = frame.stable_text || "-";
    if (frame.stable_text) addHistory({ time: Date.now() / 1000, text: frame.stable_text });
  }
  const rejected = $("rejected");
  rejected.replaceChildren();
  if (frame.rejected) {  // --debug: why each candidate was not taken for a digit
    const counts = {};
    for (const r of frame.rejected) counts[r.reason] = (counts[r.reason] || 0) + 1;
    for (const [reason, count] of Object.entries(counts)) {
      const item = document.createElement("li");
      item.textContent = `not a digit: ${reason}` + (count > 1 ? ` (${count})` : "");
      rejected.append(item);
    }
  }
}

async function start() {
  try {
    const response = await fetch("api/state", { cache: "no-store" });
    const state = await response.json();
    if (!response.ok) throw new Error(state.error);
    setStatus(state);
    for (const entry of state.history) addHistory(entry);
    shownReading = state.reading;
    $("reading").textContent = state.reading || "-";
    setUpPad(state.pad);
  } catch (error) {
    note(`cannot reach the device: ${error.message}`);
    setUpPad({ size: 400, pen: 18 });
  }
  const events = new EventSource("events");
  let pendingFrame = null;
  events.onmessage = (message) => {
    // Frames can come faster than the screen refreshes: show the newest once per animation frame.
    if (pendingFrame === null) requestAnimationFrame(() => { showReading(pendingFrame); pendingFrame = null; });
    pendingFrame = JSON.parse(message.data);
  };
  events.addEventListener("status", (message) => setStatus(JSON.parse(message.data)));
  followStream();
}

// ---- Draw pad: the strokes go to the device, which draws them on `digits draw`'s canvas with its pen and
// reads them through the same preprocessing; one request at a time, the newest drawing next.
const pad = { strokes: [], version: 0, answered: -1, busy: false, last: null };
window.digitsPad = pad;

function setUpPad(settings) {
  const canvas = $("pad");
  const context = canvas.getContext("2d");
  canvas.width = canvas.height = settings.size;
  const blank = () => { context.fillStyle = "#fff"; context.fillRect(0, 0, canvas.width, canvas.height); };
  blank();
  context.lineWidth = settings.pen;
  context.lineCap = context.lineJoin = "round";
  context.strokeStyle = "#000";
  let stroke = null;
  const point = (event) => {
    const box = canvas.getBoundingClientRect();
    return [Math.round((event.clientX - box.left) * canvas.width / box.width),
            Math.round((event.clientY - box.top) * canvas.height / box.height)];
  };
  const extend = (event) => {
    const [x, y] = point(event);
    const last = stroke[stroke.length - 1] || [x, y];
    if (stroke.length && last[0] === x && last[1] === y) return;
    context.beginPath();
    context.moveTo(last[0], last[1]);
    context.lineTo(x, y);
    context.stroke();
    stroke.push([x, y]);
    changed();
  };
  canvas.addEventListener("pointerdown", (event) => {
    canvas.setPointerCapture(event.pointerId);
    stroke = [];
    pad.strokes.push(stroke);
    extend(event);
    event.preventDefault();
  });
  canvas.addEventListener("pointermove", (event) => {
    if (!stroke) return;
    for (const each of event.getCoalescedEvents ? event.getCoalescedEvents() : [event]) extend(each);
  });
  const end = () => { stroke = null; };
  canvas.addEventListener("pointerup", end);
  canvas.addEventListener("pointercancel", end);
  $("pad-clear").addEventListener("click", () => {
    pad.strokes = [];
    stroke = null;
    blank();
    changed();
  });
}

function changed() {
  pad.version += 1;
  if (!pad.busy) readPad();
}

async function readPad() {
  pad.busy = true;
  try {
    while (pad.answered < pad.version) {
      const version = pad.version;
      let answer;
      if (pad.strokes.length === 0) {
        answer = { digit: null, text: "" };
      } else {
        const response = await fetch("api/draw", { method: "POST", headers: { "Content-Type": "application/json" },
                                                  body: JSON.stringify({ strokes: pad.strokes }) });
        answer = await response.json();
        if (!response.ok) answer = { digit: null, text: "", error: answer.error };
      }
      pad.last = answer;
      pad.answered = version;
      showPad(answer);
    }
  } catch (error) {
    showPad({ digit: null, error: error.message });
  } finally {
    pad.busy = false;
  }
}

function showPad(answer) {
  $("pad-digit").textContent = answer.error ? "!" : answer.text === "no digit" ? "?" : answer.digit === null ? "-" : String(answer.digit);
  const input = $("pad-input");
  if (answer.input) input.src = answer.input; else input.removeAttribute("src");
  input.hidden = !answer.input;
  const top3 = $("pad-top3");
  top3.replaceChildren();
  if (answer.error) {
    const item = document.createElement("li");
    item.className = "error";
    item.textContent = answer.error;
    top3.append(item);
  }
  for (const [digit, probability] of answer.top3 || []) {
    const item = document.createElement("li");
    item.textContent = `${digit}: ${(100 * probability).toFixed(1)}%`;
    top3.append(item);
  }
  if (answer.not_digit) {
    const item = document.createElement("li");
    item.textContent = `not a digit: ${(100 * answer.not_digit).toFixed(1)}%`;
    top3.append(item);
  }
}

// ---- Upload: the photo itself is the request body, read as `digits predict` reads a file.
const upload = { last: null, busy: false };
window.digitsUpload = upload;

async function send(file) {
  upload.busy = true;
  $("upload-answer").textContent = "…";
  $("upload-detail").textContent = `reading ${file.name}`;
  $("upload-detail").className = "small";
  try {
    const response = await fetch(`api/read?overlay=1&name=${encodeURIComponent(file.name)}`, {
      method: "POST", body: file, headers: { "Content-Type": file.type || "application/octet-stream" } });
    const answer = await response.json();
    upload.last = { status: response.status, ...answer };
    if (!response.ok) throw new Error(answer.error || `HTTP ${response.status}`);
    $("upload-answer").textContent = answer.text || "-";
    $("upload-detail").textContent = answer.top3
      ? `top 3: ${answer.top3.map(([d, p]) => `${d} ${(100 * p).toFixed(1)}%`).join(", ")}`
      : answer.message || `${answer.digits.length} digit(s) found`;
    const overlay = $("upload-overlay");
    overlay.src = answer.overlay;
    overlay.hidden = false;
  } catch (error) {
    $("upload-answer").textContent = "!";
    $("upload-detail").textContent = error.message;
    $("upload-detail").className = "small error";
    $("upload-overlay").hidden = true;
  } finally {
    upload.busy = false;
  }
}

for (const id of ["upload-camera", "upload-file"]) {
  $(id).addEventListener("change", (event) => {
    const file = event.target.files[0];
    event.target.value = "";  // the same photo again is a new upload
    if (file) send(file);
  });
}

start();
