// The console page (surgeon or bedside backup): endoscope video (WebCodecs H.264, JPEG
// fallback), HUD, input, and the control buttons of the console's role.
// Wire format: see console/web/protocol.py. Times sent back are performance.now() [ms];
// the console maps them onto its own clock with the ping/pong exchange.
'use strict';

const $ = (id) => document.getElementById(id);
const canvas = $('video');
const ctx2d = canvas.getContext('2d', { alpha: false, desynchronized: true });
const ghostLayer = $('ghost-layer');
const ghostCtx = ghostLayer.getContext('2d');

const SEND_PERIOD_MS = 20;       // input messages while the hands move
const KEEPALIVE_MS = 100;        // at least this often while the page is open (presence)
const DEAD_ZONE = 0.15;          // gamepad sticks

let ws = null;
let hello = null;
let shownCapture = NaN;          // capture time of the frame on screen [ms, page clock]
const paints = [];               // paint times of the last second [ms]
// The predictive display: where the console has commanded each instrument, sent with
// each picture (console/ghost.py); drawn over it while shown.
const ghost = { shown: true, latest: null };
const GHOST_ALONE_MS = 600;      // no picture for this long: the ghost is drawn on its own
let lastPaint = -Infinity;       // when the latest picture was painted [ms]

const input = {
  arm: null, keys: new Set(), clutchButton: false, hold: false,
  nudge: [0, 0, 0], lastSent: 0, pad: null, padButtons: [],
};

// ?codec=h264 keeps WebCodecs whatever happens; ?codec=jpeg asks for JPEG pictures.
const QUERY = new URLSearchParams(location.search);
const WANTED_CODEC = QUERY.get('codec');
// This console launch's secret, from the URL the console printed; /ws wants it too.
const TOKEN = QUERY.get('token') || '';

function hasWebCodecs() {
  return WANTED_CODEC !== 'jpeg'
    && typeof VideoDecoder === 'function' && typeof EncodedVideoChunk === 'function';
}

function send(obj) {
  if (ws && ws.readyState === WebSocket.OPEN) ws.send(JSON.stringify(obj));
}

function setText(id, text) {
  const el = $(id);
  if (el && el.textContent !== text) el.textContent = text;
}

// ---- connection ------------------------------------------------------------------

function connect() {
  ws = new WebSocket(`ws://${location.host}/ws?token=${encodeURIComponent(TOKEN)}`);
  ws.binaryType = 'arraybuffer';
  ws.onopen = () => {
    setText('conn', 'connected');
    send({ t: 'hello', webcodecs: hasWebCodecs(), fallback: WANTED_CODEC !== 'h264' });
  };
  ws.onmessage = (ev) => {
    if (typeof ev.data === 'string') onText(JSON.parse(ev.data));
    else video.onVideo(ev.data, performance.now());
  };
  ws.onclose = () => {
    // A console started again has a new secret: its page is at the URL it printed.
    setText('conn', 'disconnected, retrying (a restarted console prints a new URL)');
    resetDecoder();
    setTimeout(connect, 1000);
  };
}

function onText(msg) {
  if (msg.t === 'ping') send({ t: 'pong', id: msg.id, at: performance.now() });
  else if (msg.t === 'hud') showHud(msg);
  else if (msg.t === 'hello') onHello(msg);
  else if (msg.t === 'codec') onCodec(msg);
  else if (msg.t === 'ghost') onGhost(msg);
  else if (msg.t === 'mark') onMark(msg);
}

function onCodec(msg) {
  // The console switched this page to JPEG pictures: the H.264 decoder is not needed.
  console.warn('video:', msg.why);
  resetDecoder();
}

function onHello(msg) {
  hello = msg;
  canvas.width = msg.width;
  canvas.height = msg.height;
  canvas.style.aspectRatio = `${msg.width} / ${msg.height}`;
  const select = $('arm');
  select.replaceChildren(...msg.arms.map((a) => new Option(a, a)));
  input.arm = input.arm && msg.arms.includes(input.arm) ? input.arm : msg.arms[0];
  select.value = input.arm;
  for (const id of ['clutch', 'hold']) $(id).disabled = !msg.drives;
  setText('input-state', msg.drives ? '' : `arms follow the ${msg.device} device`);
  setText('hud-console', `${msg.role || 'surgeon'} · ${msg.console} ${msg.console_session}`);
  const backup = msg.role === 'backup';
  setText('role', backup ? 'backup console' : 'surgeon console');
  document.title = `telesurgery - ${backup ? 'backup' : 'surgeon'} console`;
  $('request').hidden = backup;
  $('take').hidden = !backup;
  $('grant').hidden = !backup;
  for (const el of document.querySelectorAll('.control-key')) {
    el.textContent = backup ? 'take control' : 'request control';
  }
}

// ---- control -------------------------------------------------------------------------

// T, the gamepad's Y and the role's button: a backup console takes control at once, a
// surgeon console asks the bedside for it.
function controlAction() {
  if (!hello) return;
  send({ t: 'action', a: hello.role === 'backup' ? 'take_control' : 'request_control' });
}

function duration(s) {
  if (s == null) return '';
  return s < 120 ? `${s.toFixed(0)} s` : `${(s / 60).toFixed(0)} min`;
}

function showOwner(o) {
  const you = !!o.you;
  setText('hud-owner', o.owner ? `${you ? `you (${o.owner})` : o.owner}` +
          (o.since_s != null ? ` for ${duration(o.since_s)}` : '') : '-');
  $('hud-owner').className = you ? 'you' : 'other';
  const requests = o.requests || [];
  setText('hud-requests', requests.map((r) => (r.you ? `you (${r.name})` : r.name)).join(', ') || 'none');
  setText('hud-handovers', o.handovers == null ? '-' : `${o.handovers}` +
          (o.previous ? `, last from ${o.previous}: ${o.reason}` : ''));
  let overlay = you ? 'you have control' : `control: ${o.owner || '-'}`;
  if (!you && requests.some((r) => r.you)) overlay += ' (you asked; waiting for the bedside)';
  setText('in-control', overlay);
  $('in-control').className = you ? 'you' : 'other';
  showChecklist(o.checklist);
  // A surgeon's outage motion, offered for replay: the bedside allows it or not.
  const replay = o.replay;
  const allow = $('allow-replay');
  allow.hidden = !(hello && hello.role === 'backup' && replay);
  allow.disabled = !replay || !!replay.allowed_by;
  allow.title = replay ? `replay ${replay.console}'s outage motion on the robot, slowly` : '';
  $('stage').dataset.replay = replay ? (replay.allowed_by ? 'allowed' : 'offered') : '';
  const grant = $('grant');
  const others = requests.filter((r) => !r.you);
  grant.disabled = others.length === 0;
  grant.title = others.length ? `give control to ${others[0].name}, who asked first`
    : 'no console is waiting for control';
}

// The patient's pre-flight checklist: each item's state; on the bedside's page, confirm it
// and override a failed item with the reason typed beside the button (the patient node
// judges both, names them by this console's certificate and audits them).
function showChecklist(c) {
  const bedside = !!hello && hello.role === 'backup' && !!c;
  $('checklist-bedside').hidden = !bedside;
  if (!c) {
    setText('checklist-state', 'not required by the patient node');
    $('checklist').replaceChildren();
    return;
  }
  setText('checklist-state', c.cleared ? `cleared, confirmed by ${c.confirmed_by}`
    : `blocking remote control; confirmed by ${c.confirmed_by || 'nobody yet'}`);
  $('checklist-state').className = c.cleared ? 'you' : 'other';
  $('checklist').replaceChildren(...(c.items || []).map((i) => {
    const li = document.createElement('li');
    li.dataset.item = i.item;
    li.dataset.state = i.state;
    li.textContent = `${i.state.replace('_', '-')}: ${i.text} (${i.detail}` +
      (i.reason ? `; overridden: ${i.reason})` : ')');
    if (bedside && i.state === 'no_go') {
      const b = document.createElement('button');
      b.textContent = 'override';
      b.addEventListener('click', () => send({ t: 'checklist', a: 'override', item: i.item,
                                               reason: $('override-reason').value }));
      li.append(' ', b);
    }
    return li;
  }));
}

// ---- video (video.js decodes; this page paints with the ghost) ---------------------

const video = new VideoSink(canvas, send, (image, capture) => {
  ctx2d.drawImage(image, 0, 0, canvas.width, canvas.height);
  ghostLayer.hidden = true;
  if (ghost.latest) drawGhost(ctx2d, canvas.width / ghost.latest.width,
                              canvas.height / ghost.latest.height);
  drawMarks(ctx2d);
  lastPaint = performance.now();
  shownCapture = capture;
  paints.push(lastPaint);
});

function resetDecoder() { video.reset(); }

// A mentor watching through an observer gateway points on the picture (console/display.py
// relays it): a ring where the pointer is, the stroke drawn while the button is held, and the
// mentor's name, drawn into each picture until the mentor has been still for MARK_FADE_MS.
// Who is shown goes in #stage's data-marks for tests and tools.
const MARK_FADE_MS = 3000;
const MARK_POINTS = 200;
const marks = new Map();         // mentor -> { x, y, stroke: [[x, y], ...], at }

function onMark(msg) {
  const m = marks.get(msg.mentor) || { stroke: [] };
  if (msg.down) m.stroke.push([msg.x, msg.y]);
  else m.stroke = [];
  if (m.stroke.length > MARK_POINTS) m.stroke.shift();
  Object.assign(m, { x: msg.x, y: msg.y, at: performance.now() });
  marks.set(msg.mentor, m);
}

function drawMarks(ctx) {
  // Nothing drawn, nothing touched, while no mentor points: the picture keeps its direct
  // path to the screen (see the ghost's cost in docs/console.md).
  if (!marks.size) return;
  const now = performance.now();
  const w = canvas.width;
  const h = canvas.height;
  for (const [name, m] of marks) {
    if (now - m.at > MARK_FADE_MS) marks.delete(name);
  }
  $('stage').dataset.marks = [...marks.keys()].join(' ');
  if (!marks.size) return;
  ctx.save();
  ctx.strokeStyle = '#ffd33d';
  ctx.fillStyle = '#ffd33d';
  ctx.lineWidth = 3;
  ctx.font = '600 14px ui-monospace, monospace';
  for (const [name, m] of marks) {
    if (m.stroke.length > 1) {
      ctx.beginPath();
      m.stroke.forEach(([x, y], i) => (i ? ctx.lineTo(x * w, y * h) : ctx.moveTo(x * w, y * h)));
      ctx.stroke();
    }
    ctx.beginPath();
    ctx.arc(m.x * w, m.y * h, 10, 0, 2 * Math.PI);
    ctx.stroke();
    ctx.fillText(`mentor ${name}`, m.x * w + 14, m.y * h - 10);
  }
  ctx.restore();
}

// The ghost of each tip, a ring with a line from where the latest state has it: drawn into
// each picture as it is painted (a layer of its own would be composited with every frame),
// and on a layer over the last picture only while none comes (an outage's twin, a frozen
// video). Its pixels, as drawn, go in #stage's data-ghost for tests and tools.
function onGhost(msg) {
  ghost.latest = msg;
  setText('hud-delay', msg.rtt_ms != null ? `${msg.rtt_ms.toFixed(0)} ms round trip` : '-');
  if (performance.now() - lastPaint > GHOST_ALONE_MS) {
    if (ghostLayer.width !== msg.width || ghostLayer.height !== msg.height) {
      ghostLayer.width = msg.width;
      ghostLayer.height = msg.height;
    }
    ghostLayer.hidden = false;
    ghostCtx.clearRect(0, 0, ghostLayer.width, ghostLayer.height);
    drawGhost(ghostCtx, 1, 1);
  }
}

function drawGhost(ctx, sx, sy) {
  const g = ghost.latest;
  const stage = $('stage');
  if (!ghost.shown || !g) {
    stage.dataset.ghost = ghost.shown ? '' : 'off';
    return;
  }
  const drawn = [];
  ctx.lineWidth = 2;
  ctx.strokeStyle = ctx.fillStyle = 'rgba(88, 166, 255, 0.9)';
  ctx.font = '12px ui-monospace, monospace';
  for (const [arm, a] of Object.entries(g.arms)) {
    if (!a.ghost) continue;
    const [u, v] = [a.ghost[0] * sx, a.ghost[1] * sy];
    ctx.beginPath();
    if (a.seen) {
      ctx.moveTo(a.seen[0] * sx, a.seen[1] * sy);
      ctx.lineTo(u, v);
    }
    ctx.moveTo(u + 7, v);
    ctx.arc(u, v, 7, 0, 2 * Math.PI);
    ctx.stroke();
    ctx.fillText(`${arm} ${a.lead_mm.toFixed(1)} mm`, u + 10, v - 10);
    drawn.push(`${arm}:${a.ghost[0].toFixed(1)},${a.ghost[1].toFixed(1)}` +
               (a.seen ? `:${a.seen[0].toFixed(1)},${a.seen[1].toFixed(1)}` : ''));
  }
  stage.dataset.ghost = drawn.join(' ');
}

// The outage's twin: the picture greyed (it is the patient's last), a banner saying what
// the surgeon now drives; then the replay of that motion, if offered.
function showOutage(h) {
  const t = h.twin || {};
  const r = h.replay || {};
  const on = Boolean(t.active);
  $('stage').classList.toggle('twin', on);
  $('stage').dataset.twin = on ? 'active' : '';
  $('discard-replay').hidden = !r.state;
  let text = '';
  if (on) text = `OUTAGE · LOCAL TWIN, NOT THE PATIENT · ${t.for_s.toFixed(1)} s, ` +
    `${t.buffered_s.toFixed(1)} s kept`;
  else if (r.state === 'offered') text = 'OUTAGE MOTION OFFERED FOR REPLAY · waiting for the bedside';
  else if (r.state === 'replaying') text = `REPLAYING THE OUTAGE MOTION · ${r.remaining_s.toFixed(1)} s left`;
  $('twin-banner').hidden = !text;
  $('twin-banner').textContent = text;
}

function toggleGhost() {
  ghost.shown = !ghost.shown;
  const b = $('ghost');
  b.textContent = ghost.shown ? 'ghost on' : 'ghost off';
  b.setAttribute('aria-pressed', String(ghost.shown));
  ghostLayer.hidden = true;
  if (!ghost.shown) $('stage').dataset.ghost = 'off';
}

// ---- HUD -----------------------------------------------------------------------------

const ms = (d) => (d && d.p50 !== undefined ? `${d.p50.toFixed(1)} / ${d.p99.toFixed(1)} ms` : '-');

function showHud(h) {
  showOutage(h);
  const s = h.safety || {};
  const state = $('hud-safety');
  setText('hud-safety', s.state || '-');
  state.className = s.state || '';
  setText('hud-modes', Object.entries(s.modes || {}).map(([a, m]) => `${a} ${m}`).join(', ') || '-');
  setText('hud-counters', `${s.holds ?? '-'} / ${s.rejected ?? '-'} / ${s.stale ?? '-'}`);
  setText('hud-clutch', Object.entries(h.clutch || {}).map(([a, c]) => `${a} ${c}`).join(', ') +
          (h.hold ? ' (hold)' : ''));
  $('hold').classList.toggle('on', !!h.hold);
  input.hold = !!h.hold;
  const o = h.owner || {};
  showOwner(o);
  setText('hud-arm-sessions', Object.entries(o.arms || {}).map(([a, s2]) => `${a} ${s2 || '-'}`).join(', ') || '-');
  const c = h.control || {};
  setText('hud-device', c.device || '-');
  setText('hud-control-rate', c.rate_hz != null ? `${c.rate_hz.toFixed(0)} Hz` : '-');
  setText('hud-control-latency', ms(c.latency_ms));
  // The motion scale, and why: lowered from the console's own as the round trip grows.
  setText('hud-scale', c.scale != null ? `${c.scale.toFixed(3)}` +
          (c.scale < c.scale_base ? ` (of ${c.scale_base}, rtt ${Math.round(c.scale_rtt_ms)} ms)` : '') : '-');
  showLinks(h.links || {});
  const p = h.page || {};
  setText('hud-codec', p.codec || '-');
  setText('hud-g2g', ms(p.glass_to_glass_ms));
  setText('hud-clock', p.clock_rtt_ms != null ? `${p.clock_rtt_ms.toFixed(2)} ms` : '-');
  const v = h.video || {};
  setText('hud-frames', v.decoder ? `${v.received} / ${v.decoder.lost}` : 'video off');
  const t = h.task;
  setText('hud-task', t ? taskLine(t) : '-');
  showForces(h.forces);
  const alarms = $('hud-alarms');
  const items = (h.alarms || []).map((a) => { const li = document.createElement('li'); li.textContent = a; return li; });
  alarms.replaceChildren(...items);
}

// The task on the trainee's page: its clock, objectives, penalties as they happen, and the
// score once it is done (or 0 past the cutoff).
function taskLine(t) {
  const pen = Object.entries(t.penalties || {}).filter(([, n]) => n > 0)
    .map(([k, n]) => `${n} ${k}`).join(', ');
  const clock = t.time_s != null ? `${t.time_s.toFixed(1)} s` : '-';
  const score = t.score != null ? `, score ${t.score.toFixed(1)}` : '';
  return `${t.name || 'task'} ${clock}: ${t.completed ?? 0}/${t.objectives ?? '?'}` +
    (pen ? `, penalties: ${pen}` : '') + score;
}

// ---- force at the tips ------------------------------------------------------------------
// Per instrument: a gauge (magnitude against the cap, the peak the colour follows), its
// colour (green, amber from 75 % of the cap, red at or above it, grey when unknown), the
// direction in the picture (view frame: x right, y down; a dot: toward you, a cross: into
// the scene), the grip. Above the cap: a red frame round the video, the arm named in
// #hud-forces[data-force-alarm], and a short repeating tone unless muted.

const GAUGE_FULL = 1.25;         // the bar's end, as a fraction of the cap
const CUE_PERIOD_MS = 400;       // one tone this often while above the cap
const CUE_TONE_S = 0.15;
const CUE_HZ = 880;
const SVG = 'http://www.w3.org/2000/svg';
const gauges = new Map();        // arm -> its elements
const cue = { ctx: null, muted: false, alarm: false, timer: null };

const newton = (v) => (v == null ? '?' : v.toFixed(1));

function gauge(arm) {
  let g = gauges.get(arm);
  if (g) return g;
  const root = document.createElement('div');
  root.className = 'gauge unknown';
  root.id = `force-${arm}`;
  root.dataset.level = 'unknown';
  const name = document.createElement('span');
  name.className = 'arm';
  name.textContent = arm;
  const dir = document.createElementNS(SVG, 'svg');
  dir.setAttribute('class', 'dir');
  dir.setAttribute('viewBox', '-10 -10 20 20');
  const ring = document.createElementNS(SVG, 'circle');
  ring.setAttribute('r', '9');
  const line = document.createElementNS(SVG, 'line');
  const depth = document.createElementNS(SVG, 'text');
  depth.setAttribute('class', 'depth');
  depth.setAttribute('y', '3');
  dir.append(ring, line, depth);
  const bar = document.createElement('div');
  bar.className = 'bar';
  const fill = document.createElement('div');
  fill.className = 'fill';
  const peak = document.createElement('div');
  peak.className = 'peak';
  const cap = document.createElement('div');
  cap.className = 'cap';
  cap.style.left = `${(100 / GAUGE_FULL).toFixed(1)}%`;
  bar.append(fill, peak, cap);
  const value = document.createElement('span');
  value.className = 'value';
  const grip = document.createElement('span');
  grip.className = 'grip';
  root.append(name, dir, bar, value, grip);
  $('hud-forces').append(root);
  $('hud-force-none').hidden = true;
  g = { root, line, depth, fill, peak, value, grip, dir };
  gauges.set(arm, g);
  return g;
}

function showGauge(g, f, capN) {
  const level = f.level || 'unknown';
  if (g.root.dataset.level !== level) {
    g.root.dataset.level = level;
    g.root.className = `gauge ${level}`;
  }
  const frac = (v) => (v == null ? 0 : Math.min(1, v / (capN * GAUGE_FULL)));
  g.fill.style.width = `${(100 * frac(f.force_n)).toFixed(1)}%`;
  g.peak.style.left = `${(100 * frac(f.peak_n)).toFixed(1)}%`;
  const text = `${newton(f.force_n)} N`;
  if (g.value.textContent !== text) g.value.textContent = text;
  const grip = `grip ${newton(f.grip_n)} N` + (f.peak_n != null ? ` · peak ${newton(f.peak_n)} N` : '');
  if (g.grip.textContent !== grip) g.grip.textContent = grip;
  // The direction in the picture: the arrow's length is the share of the force that lies
  // in the image plane; what is left points toward the surgeon or into the scene.
  const v = f.view_n;
  const m = v ? Math.hypot(v[0], v[1], v[2]) : 0;
  let x2 = 0;
  let y2 = 0;
  let depth = '';
  if (v && m > 0.05) {
    x2 = (8 * v[0]) / m;
    y2 = (8 * v[1]) / m;
    if (Math.abs(v[2]) > 0.5 * m) depth = v[2] > 0 ? '×' : '•';
  }
  g.line.setAttribute('x1', '0');
  g.line.setAttribute('y1', '0');
  g.line.setAttribute('x2', x2.toFixed(2));
  g.line.setAttribute('y2', y2.toFixed(2));
  g.depth.textContent = depth;
  g.dir.dataset.view = v ? v.map((c) => c.toFixed(2)).join(' ') : '';
}

function showForces(forces) {
  if (!forces) return;
  const capN = forces.cap_n;
  setText('hud-force-cap', `cap ${capN} N: amber from ${(0.75 * capN).toFixed(1)} N, red and a tone at or above it`);
  const over = [];
  for (const [arm, f] of Object.entries(forces.arms || {})) {
    showGauge(gauge(arm), f, capN);
    if (f.level === 'over') over.push(arm);
  }
  const alarm = over.join(' ');
  const box = $('hud-forces');
  if (box.dataset.forceAlarm !== alarm) box.dataset.forceAlarm = alarm;
  $('stage').classList.toggle('force-over', over.length > 0);
  cue.alarm = over.length > 0;
  updateCue();
}

// Browsers let a page make sound only after the user interacted with it: the audio
// context is made (or resumed) at the first key or pointer press.
function unlockAudio() {
  try {
    if (!cue.ctx) cue.ctx = new AudioContext();
    if (cue.ctx.state === 'suspended') cue.ctx.resume().then(updateCue, () => {});
  } catch (e) {
    console.warn('no audio for the force cue:', e.message);
  }
  updateCue();
}

function tone() {
  const c = cue.ctx;
  if (!c || c.state !== 'running') return;
  const t = c.currentTime;
  const osc = c.createOscillator();
  const gain = c.createGain();
  osc.frequency.value = CUE_HZ;
  gain.gain.setValueAtTime(0.0001, t);
  gain.gain.exponentialRampToValueAtTime(0.25, t + 0.01);
  gain.gain.exponentialRampToValueAtTime(0.0001, t + CUE_TONE_S);
  osc.connect(gain).connect(c.destination);
  osc.start(t);
  osc.stop(t + CUE_TONE_S + 0.01);
}

// #hud-forces[data-force-cue]: off (below the cap), muted, waiting (above the cap, before
// the user's first interaction with the page), sounding.
function updateCue() {
  const running = !!cue.ctx && cue.ctx.state === 'running';
  let state = 'off';
  if (cue.alarm) state = cue.muted ? 'muted' : running ? 'sounding' : 'waiting';
  const box = $('hud-forces');
  if (box.dataset.forceCue !== state) box.dataset.forceCue = state;
  if (state === 'sounding' && cue.timer === null) {
    tone();
    cue.timer = setInterval(tone, CUE_PERIOD_MS);
  } else if (state !== 'sounding' && cue.timer !== null) {
    clearInterval(cue.timer);
    cue.timer = null;
  }
}

function toggleMute() {
  cue.muted = !cue.muted;
  const b = $('mute');
  b.textContent = cue.muted ? 'sound off' : 'sound on';
  b.setAttribute('aria-pressed', String(cue.muted));
  b.classList.toggle('on', cue.muted);
  updateCue();
}

function showLinks(links) {
  const dl = $('hud-links');
  const rows = [];
  for (const [path, st] of Object.entries(links)) {
    const p50 = (d) => (d && d.p50 !== undefined ? d.p50.toFixed(2) : '-');
    const way = st.one_way_ms || {};
    const parts = [];
    if (st.state) parts.push(st.state);
    if (st.rtt_ms) parts.push(`rtt ${p50(st.rtt_ms)}`);
    if (way.forward || way.reverse) parts.push(`→ ${p50(way.forward)} ← ${p50(way.reverse)}`);
    if (st.loss) parts.push(`loss ${(100 * st.loss).toFixed(2)}%`);
    const dt = document.createElement('dt');
    dt.textContent = `${path} (ms)`;
    const dd = document.createElement('dd');
    dd.textContent = parts.join(' · ') || JSON.stringify(st).slice(0, 60);
    rows.push(dt, dd);
  }
  if (rows.length) dl.replaceChildren(...rows);
}

function tick() {
  const now = performance.now();
  while (paints.length && now - paints[0] > 1000) paints.shift();
  setText('hud-fps', `${paints.length}`);
  setText('hud-video-age', Number.isFinite(shownCapture) ? `${(now - shownCapture).toFixed(0)} ms` : '-');
  pollGamepad();
  sendInput(now);
}

// ---- input ---------------------------------------------------------------------------

const MOVES = {
  KeyD: [0, 1], KeyA: [0, -1], KeyF: [1, 1], KeyR: [1, -1], KeyW: [2, 1], KeyS: [2, -1],
};

function axis(v) { return Math.abs(v) < DEAD_ZONE ? 0 : v; }

function pollGamepad() {
  const pads = navigator.getGamepads ? navigator.getGamepads() : [];
  const pad = Array.from(pads).find((p) => p && p.connected) || null;
  const pressed = pad ? pad.buttons.map((b) => b.pressed) : [];
  const was = input.padButtons;
  if (pad) {
    if (pressed[1] && !was[1]) toggleHold();
    if (pressed[3] && !was[3]) controlAction();
    if (pressed[5] && !was[5] && hello) {
      const i = (hello.arms.indexOf(input.arm) + 1) % hello.arms.length;
      selectArm(hello.arms[i]);
    }
  }
  input.padButtons = pressed;
  input.pad = pad;
}

function state() {
  const move = [0, 0, 0];
  let roll = 0;
  for (const code of input.keys) {
    const m = MOVES[code];
    if (m) move[m[0]] += m[1];
  }
  if (input.keys.has('KeyQ')) roll -= 1;
  if (input.keys.has('KeyE')) roll += 1;
  let grip = input.keys.has('KeyG') ? 0 : 1;
  let clutch = input.keys.has('Space') || input.clutchButton;
  const pad = input.pad;
  if (pad) {
    move[0] += axis(pad.axes[0] || 0);
    move[1] += axis(pad.axes[1] || 0);
    move[2] -= axis(pad.axes[3] || 0);
    roll += axis(pad.axes[2] || 0);
    if (pad.buttons[7]) grip = Math.min(grip, 1 - pad.buttons[7].value);
    clutch = clutch || !!(pad.buttons[4] && pad.buttons[4].pressed) ||
      !!(pad.buttons[0] && pad.buttons[0].pressed);
  }
  const clamp = (v) => Math.max(-1, Math.min(1, v));
  return { move: move.map(clamp), roll: clamp(roll), grip, clutch };
}

function sendInput(now) {
  if (!hello || !hello.drives || !input.arm || document.hidden) return;
  const s = state();
  const active = s.move.some((v) => v !== 0) || s.roll !== 0 || input.nudge.some((v) => v !== 0);
  if (now - input.lastSent < (active ? SEND_PERIOD_MS : KEEPALIVE_MS)) return;
  const lim = (v) => Math.max(-2000, Math.min(2000, v));
  send({ t: 'input', arm: input.arm, move: s.move, nudge: input.nudge.map(lim), roll: s.roll,
         grip: s.grip, clutch: s.clutch });
  input.nudge = [0, 0, 0];
  input.lastSent = now;
}

function sendNow() { input.lastSent = 0; sendInput(performance.now()); }

function selectArm(arm) {
  // The arm left behind keeps no fresh input, so its instrument locks where it is.
  input.arm = arm;
  $('arm').value = arm;
  sendNow();
}

function toggleHold() {
  send({ t: 'action', a: input.hold ? 'resume' : 'hold' });
  input.hold = !input.hold;
  $('hold').classList.toggle('on', input.hold);
}

document.addEventListener('keydown', (e) => {
  if (e.target instanceof HTMLSelectElement) return;
  if (e.code === 'KeyH' && !e.repeat) toggleHold();
  else if (e.code === 'KeyT' && !e.repeat) controlAction();
  else if (e.code === 'KeyM' && !e.repeat) toggleMute();
  else if (e.code === 'KeyP' && !e.repeat) toggleGhost();
  else if ((e.code === 'Digit1' || e.code === 'Digit2') && hello) {
    const arm = hello.arms[Number(e.code.slice(-1)) - 1];
    if (arm) selectArm(arm);
  } else if (MOVES[e.code] || ['KeyQ', 'KeyE', 'KeyG', 'Space'].includes(e.code)) {
    input.keys.add(e.code);
    e.preventDefault();
    if (!e.repeat) sendNow();
  }
});
document.addEventListener('keyup', (e) => {
  if (input.keys.delete(e.code)) sendNow();
});
window.addEventListener('blur', () => { input.keys.clear(); input.clutchButton = false; });

canvas.addEventListener('pointerdown', (e) => {
  if (e.button === 0) canvas.setPointerCapture(e.pointerId);
  canvas.focus();
});
canvas.addEventListener('pointermove', (e) => {
  if (e.buttons & 1) {
    // Screen axes are the view's (x right, y down): a drag moves the hand along them.
    input.nudge[0] += e.movementX;
    input.nudge[1] += e.movementY;
  }
});
canvas.addEventListener('wheel', (e) => {
  input.nudge[2] -= e.deltaY;
  e.preventDefault();
}, { passive: false });

const clutchButton = $('clutch');
clutchButton.addEventListener('pointerdown', () => { input.clutchButton = true; sendNow(); });
for (const ev of ['pointerup', 'pointerleave', 'pointercancel']) {
  clutchButton.addEventListener(ev, () => {
    if (input.clutchButton) { input.clutchButton = false; sendNow(); }
  });
}
$('hold').addEventListener('click', toggleHold);
$('request').addEventListener('click', () => send({ t: 'action', a: 'request_control' }));
$('take').addEventListener('click', () => send({ t: 'action', a: 'take_control' }));
$('grant').addEventListener('click', () => send({ t: 'action', a: 'grant_control' }));
$('checklist-confirm').addEventListener('click', () => send({ t: 'checklist', a: 'confirm' }));
$('arm').addEventListener('change', (e) => selectArm(e.target.value));
$('mute').addEventListener('click', toggleMute);
$('ghost').addEventListener('click', toggleGhost);
$('allow-replay').addEventListener('click', () => send({ t: 'action', a: 'allow_replay' }));
$('discard-replay').addEventListener('click', () => send({ t: 'action', a: 'discard_replay' }));
for (const ev of ['pointerdown', 'keydown']) {
  document.addEventListener(ev, unlockAudio, { capture: true });
}

setInterval(tick, 10);
connect();
