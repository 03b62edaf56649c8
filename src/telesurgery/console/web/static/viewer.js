// The audience's viewer page: the surgeon's view without controls. The endoscope video
// (video.js), who has control, the safety state and the delay; a watermark (session, time of
// capture) is drawn into every picture as it is painted. A mentor's page also sends the
// pointer and strokes drawn on the picture, which the surgeon's page shows with the name.
// Wire format: console/web/protocol.py; the HUD's fields: audience/gateway.py.
'use strict';

const $ = (id) => document.getElementById(id);
const canvas = $('video');
const ctx2d = canvas.getContext('2d', { alpha: false, desynchronized: true });
const QUERY = new URLSearchParams(location.search);
const TOKEN = QUERY.get('token') || '';
const WANTED_CODEC = QUERY.get('codec');
const MARK_PERIOD_MS = 50;       // pointer messages while the mentor draws

let ws = null;
let session = '-';
let mentor = false;
let shownCapture = NaN;
const paints = [];

function send(obj) {
  if (ws && ws.readyState === WebSocket.OPEN) ws.send(JSON.stringify(obj));
}

function setText(id, text) {
  const el = $(id);
  if (el && el.textContent !== text) el.textContent = text;
}

function watermark(capture) {
  // The capture's wall-clock time when the page's clock knows it, else the paint's.
  const at = Number.isFinite(capture) ? Date.now() - (performance.now() - capture) : Date.now();
  const text = `${session} · ${new Date(at).toISOString().replace('T', ' ').slice(0, 19)} UTC`;
  const size = Math.max(12, Math.round(canvas.height / 30));
  ctx2d.font = `600 ${size}px ui-monospace, monospace`;
  const w = ctx2d.measureText(text).width;
  ctx2d.fillStyle = '#0008';
  ctx2d.fillRect(canvas.width - w - 2 * size, canvas.height - 2 * size, w + size, 1.6 * size);
  ctx2d.fillStyle = '#fffc';
  ctx2d.fillText(text, canvas.width - w - 1.5 * size, canvas.height - 0.8 * size);
}

const video = new VideoSink(canvas, send, (image, capture) => {
  ctx2d.drawImage(image, 0, 0, canvas.width, canvas.height);
  watermark(capture);
  shownCapture = capture;
  paints.push(performance.now());
  $('off').hidden = true;
});

function connect() {
  ws = new WebSocket(`ws://${location.host}/ws?token=${encodeURIComponent(TOKEN)}`);
  ws.binaryType = 'arraybuffer';
  ws.onopen = () => {
    setText('conn', 'connected');
    const webcodecs = WANTED_CODEC !== 'jpeg'
      && typeof VideoDecoder === 'function' && typeof EncodedVideoChunk === 'function';
    send({ t: 'hello', webcodecs, fallback: WANTED_CODEC !== 'h264' });
  };
  ws.onmessage = (ev) => {
    if (typeof ev.data !== 'string') { video.onVideo(ev.data, performance.now()); return; }
    const msg = JSON.parse(ev.data);
    if (msg.t === 'ping') send({ t: 'pong', id: msg.id, at: performance.now() });
    else if (msg.t === 'hello') onHello(msg);
    else if (msg.t === 'hud') showHud(msg);
    else if (msg.t === 'codec') video.reset();
  };
  ws.onclose = () => {
    setText('conn', 'disconnected, retrying');
    video.reset();
    setTimeout(connect, 1000);
  };
}

function onHello(msg) {
  session = msg.session;
  canvas.width = msg.width;
  canvas.height = msg.height;
  setText('session', msg.session);
  document.title = `telesurgery - ${msg.session} viewer`;
  // Who this token is (the audience, or a mentor by name): the gateway knows, not the page.
  fetch(`/api/whoami?token=${encodeURIComponent(TOKEN)}`).then((r) => r.json()).then((w) => {
    mentor = w.mentor === true;
    setText('viewer', `${w.viewer}${mentor ? ' (mentor)' : ''}`);
    $('mentor-hint').hidden = !mentor;
  }, () => {});
}

function showHud(h) {
  setText('broadcast', h.broadcast ? `on, allowed by ${h.allowed_by}` : 'off');
  if (!h.broadcast) {
    $('off').hidden = false;
    video.reset();
  }
  setText('owner', h.owner || '-');
  setText('safety', h.safety || '-');
  setText('delay', h.rtt_ms != null ? `${h.rtt_ms.toFixed(0)} ms round trip` : '-');
  const arms = $('arms');
  arms.replaceChildren(...Object.entries(h.arms || {}).flatMap(([arm, a]) => {
    const dt = document.createElement('dt');
    dt.textContent = arm;
    const dd = document.createElement('dd');
    dd.textContent = `${a.position_mm.map((v) => v.toFixed(0)).join(', ')} mm · jaw ${a.jaw_deg.toFixed(0)}°`;
    return [dt, dd];
  }));
}

function tick() {
  const now = performance.now();
  while (paints.length && now - paints[0] > 1000) paints.shift();
  setText('fps', `${paints.length}`);
  setText('age', Number.isFinite(shownCapture) ? `${(now - shownCapture).toFixed(0)} ms` : '-');
  requestAnimationFrame(tick);
}

// ---- mentoring: a pointer, and strokes while the button is down ----------------------

let lastMark = 0;
function mark(ev, phase) {
  if (!mentor) return;
  const now = performance.now();
  if (phase === 'move' && now - lastMark < MARK_PERIOD_MS) return;
  lastMark = now;
  const r = canvas.getBoundingClientRect();
  const x = Math.min(1, Math.max(0, (ev.clientX - r.left) / r.width));
  const y = Math.min(1, Math.max(0, (ev.clientY - r.top) / r.height));
  // Over HTTP, not the video socket: the gateway checks the mentor's token on each mark.
  fetch(`/api/mark?token=${encodeURIComponent(TOKEN)}`, {
    method: 'POST', body: JSON.stringify({ x, y, down: (ev.buttons & 1) === 1 }),
  }).catch(() => {});
}
canvas.addEventListener('pointerdown', (ev) => mark(ev, 'down'));
canvas.addEventListener('pointermove', (ev) => mark(ev, 'move'));
canvas.addEventListener('pointerup', (ev) => mark(ev, 'up'));

connect();
requestAnimationFrame(tick);
