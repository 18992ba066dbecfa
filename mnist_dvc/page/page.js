// The drawing page: draw (pointer events: mouse, pen or finger) or upload, send the image to
// /api/read as a PNG data URL, show what comes back. The server does all the reading (predict's
// preprocessing); this file only draws and displays.
"use strict";

const pad = document.getElementById("pad");
const ink = pad.getContext("2d");
const input = document.getElementById("input").getContext("2d");
const bars = document.getElementById("bars");
const truth = document.getElementById("truth");
const body = document.body;
let answer = null; // the last answer shown
let changes = 0; // drawing changes so far; body.dataset.shown: the change the page shows
let epoch = 0; // a clear or an upload starts a new one: answers about an older drawing are dropped
let next = null; // the image waiting to be sent: an upload's data URL, or null for the pad
let waiting = false;
let sending = false;

function blank() {
  ink.fillStyle = "#fff";
  ink.fillRect(0, 0, pad.width, pad.height);
}

for (let d = 0; d < 10; d++) {
  bars.insertAdjacentHTML("beforeend",
    `<div class="bar" id="bar-${d}"><span>${d}</span><span class="track"><span class="fill"></span></span>` +
    `<span class="value">–</span></div>`);
  truth.insertAdjacentHTML("beforeend", `<option value="${d}">${d}</option>`);
}

function changed(image = null) {
  changes += 1;
  body.dataset.changes = changes;
  next = image;
  waiting = true;
  body.dataset.pending = "1";
  pump();
}

// One request at a time; when it returns, the newest drawing goes next if it changed meanwhile.
async function pump() {
  if (sending || !waiting) return;
  sending = true;
  waiting = false;
  const change = changes, sent = epoch;
  const image = next || pad.toDataURL("image/png");
  let ok = false, reply = null;
  try {
    const response = await fetch("/api/read", {
      method: "POST",
      headers: {"Content-Type": "application/json"},
      body: JSON.stringify({image}),
    });
    reply = await response.json();
    ok = response.ok;
  } catch (err) {
    reply = {error: `the server did not answer (${err.message}): is mnist-dvc serve still running?`};
  }
  if (sent === epoch) {
    if (ok) show(reply); else refused(reply.error);
    body.dataset.shown = change;
  }
  sending = false;
  body.dataset.pending = waiting ? "1" : "0";
  pump();
}

function refused(message) {
  answer = null;
  document.getElementById("error").textContent = message;
  document.getElementById("digit").textContent = "–";
  document.getElementById("doubt").textContent = "";
  input.clearRect(0, 0, 28, 28);
  for (let d = 0; d < 10; d++) setBar(d, null, false);
  grader();
}

function show(reply) {
  answer = reply;
  document.getElementById("error").textContent = "";
  document.getElementById("digit").textContent = reply.digit;
  document.getElementById("doubt").textContent = reply.doubt ? `doubtful: ${reply.doubt}` : "";
  const pixels = input.createImageData(28, 28);
  reply.input.flat().forEach((v, i) => {
    pixels.data.set([v, v, v, 255], 4 * i);
  });
  input.putImageData(pixels, 0, 0);
  reply.handin.forEach((p, d) => setBar(d, p, d === reply.digit));
  grader();
}

function setBar(d, p, top) {
  const bar = document.getElementById(`bar-${d}`);
  bar.classList.toggle("top", top);
  bar.querySelector(".fill").style.width = p === null ? "0" : `${(100 * p).toFixed(1)}%`;
  bar.querySelector(".value").textContent = p === null ? "–" : p.toFixed(4);
  bar.dataset.p = p === null ? "" : p;
}

// The grader marks the drawing right with probability softmax[true digit], for each softmax.
function grader() {
  const t = truth.value === "" ? answer && answer.digit : Number(truth.value);
  const known = answer !== null && t !== null;
  document.getElementById("truth-digit").textContent = known ? t : "–";
  document.getElementById("chance-raw").textContent = known ? answer.raw[t].toFixed(4) : "–";
  document.getElementById("chance-handin").textContent = known ? answer.handin[t].toFixed(4) : "–";
}
truth.addEventListener("change", grader);

// Drawing: a round pen about as thick, relative to the pad, as MNIST's strokes.
let drawing = false;
function at(event) {
  const box = pad.getBoundingClientRect();
  return [(event.clientX - box.left) * pad.width / box.width, (event.clientY - box.top) * pad.height / box.height];
}
pad.addEventListener("pointerdown", (event) => {
  drawing = true;
  pad.setPointerCapture(event.pointerId);
  ink.lineWidth = 20;
  ink.lineCap = ink.lineJoin = "round";
  ink.strokeStyle = "#000";
  ink.beginPath();
  ink.moveTo(...at(event));
  ink.lineTo(...at(event));
  ink.stroke();
  changed();
});
pad.addEventListener("pointermove", (event) => {
  if (!drawing) return;
  ink.lineTo(...at(event));
  ink.stroke();
  changed();
});
for (const type of ["pointerup", "pointercancel"]) {
  pad.addEventListener(type, () => { drawing = false; });
}

document.getElementById("clear").addEventListener("click", () => {
  blank();
  epoch += 1;
  waiting = false;
  changes += 1;
  body.dataset.changes = changes;
  body.dataset.shown = changes;
  body.dataset.pending = sending ? "1" : "0";
  refused("");
});

// An uploaded file is read as it is (its own bytes, not the pad's copy), and shown on the pad.
document.getElementById("upload").addEventListener("change", (event) => {
  const file = event.target.files[0];
  if (!file) return;
  const reader = new FileReader();
  reader.onload = () => {
    const picture = new Image();
    picture.onload = () => {
      blank();
      const scale = Math.min(pad.width / picture.width, pad.height / picture.height);
      ink.drawImage(picture, 0, 0, picture.width * scale, picture.height * scale);
    };
    picture.src = reader.result;
    epoch += 1;
    changed(reader.result);
  };
  reader.readAsDataURL(file);
  event.target.value = "";
});

fetch("/api/model").then((r) => r.json()).then((m) => {
  document.getElementById("model").textContent =
    `model: ${m.model}; hand-in factor ×${m.factor} (${m.factor_source})`;
  document.getElementById("factor").textContent = `×${m.factor}`;
});

blank();
body.dataset.changes = changes;
body.dataset.shown = changes;
body.dataset.pending = "0";
