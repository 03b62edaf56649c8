// Endoscope video from the binary WebSocket messages (console/web/protocol.py): WebCodecs
// H.264 (Annex B, parameter sets in band), JPEG pictures as the fallback, and skipping to the
// next keyframe rather than queueing when the page falls behind. Shared by the console page
// and the audience's viewer page: each page says how a picture is painted (paint) and the
// sink reports every painted frame back over the socket (send).
'use strict';

const VIDEO_HEADER = 18;
const KIND_H264 = 1;
const KIND_JPEG = 2;
const MAX_DECODE_QUEUE = 2;      // frames waiting in the decoder before the page skips ahead
const MAX_LATE_MS = 250;         // a frame this old on arrival means the page fell behind
const REMEMBERED = 256;

function codecOf(data) {
  // avc1.PPCCLL from the SPS (NAL type 7): profile, constraint flags, level.
  for (let i = 0; i + 6 < data.length; i++) {
    if (data[i] === 0 && data[i + 1] === 0 && data[i + 2] === 1 && (data[i + 3] & 0x1f) === 7) {
      const hex = (b) => b.toString(16).padStart(2, '0');
      return `avc1.${hex(data[i + 4])}${hex(data[i + 5])}${hex(data[i + 6])}`;
    }
  }
  return null;
}

function forgetOld(map) {
  // Frames the decoder dropped never come out: forget the oldest beyond a few seconds' worth.
  for (const k of map.keys()) {
    if (map.size <= REMEMBERED) break;
    map.delete(k);
  }
}

class VideoSink {
  // canvas: where pictures go (resized to the stream); send(obj): a JSON message to the
  // server; paint(image, capture): draws one picture (capture: its capture time [ms, page
  // clock], NaN when not known) and returns nothing.
  constructor(canvas, send, paint) {
    this.canvas = canvas;
    this.send = send;
    this.paint = paint;
    this.decoder = null;
    this.waitingKey = true;
    this.arrivals = new Map();      // frame index -> arrival time [ms], until decoded
    this.capture = new Map();       // frame index -> capture time [ms, page clock], until drawn
    this.lastDrawn = -1;
    this.jpegDecoding = 0;          // JPEG pictures being decoded
  }

  reset() {
    if (this.decoder && this.decoder.state !== 'closed') this.decoder.close();
    this.decoder = null;
    this.waitingKey = true;
    this.lastDrawn = -1;
    this.arrivals.clear();
  }

  lostStream(why) {
    console.warn('video decoder:', why);
    this.reset();
    this.send({ t: 'action', a: 'keyframe' });
  }

  skipToKeyframe() {
    // Behind: drop frames until the next IDR rather than let them queue (each would be
    // shown later than the last); the decoder keeps its configuration.
    this.waitingKey = true;
    this.send({ t: 'action', a: 'keyframe' });
  }

  makeDecoder(data) {
    const codec = codecOf(data);
    if (!codec) return null;
    const d = new VideoDecoder({
      output: (frame) => {
        const index = frame.timestamp;
        const out = performance.now();
        this.draw(index, frame, this.arrivals.get(index), out);
        this.arrivals.delete(index);
        frame.close();
      },
      error: (e) => this.lostStream(e.message),
    });
    d.configure({ codec, optimizeForLatency: true, hardwareAcceleration: 'no-preference' });
    return d;
  }

  onVideo(buf, rx) {
    const view = new DataView(buf);
    const kind = view.getUint8(0);
    const key = (view.getUint8(1) & 1) === 1;
    const width = view.getUint16(2, true);
    const height = view.getUint16(4, true);
    const index = view.getUint32(6, true);
    const canvas = this.canvas;
    if (canvas.width !== width || canvas.height !== height) {
      canvas.width = width;
      canvas.height = height;
      canvas.style.aspectRatio = `${width} / ${height}`;
    }
    const capture = view.getFloat64(10, true);
    const data = new Uint8Array(buf, VIDEO_HEADER);
    this.capture.set(index, capture);
    forgetOld(this.capture);
    forgetOld(this.arrivals);
    const late = Number.isFinite(capture) && rx - capture > MAX_LATE_MS;
    if (kind === KIND_JPEG) {
      if (late || this.jpegDecoding >= MAX_DECODE_QUEUE) return;  // each picture stands alone
      this.jpegDecoding++;
      createImageBitmap(new Blob([data], { type: 'image/jpeg' })).then((bitmap) => {
        this.jpegDecoding--;
        this.draw(index, bitmap, rx, performance.now());
        bitmap.close();
      }, () => { this.jpegDecoding--; });
      return;
    }
    if (kind !== KIND_H264) return;
    if (!this.waitingKey && !key
        && (late || this.decoder.decodeQueueSize >= MAX_DECODE_QUEUE)) {
      this.skipToKeyframe();
      return;
    }
    if (this.waitingKey) {
      if (!key) return;
      this.decoder = this.decoder || this.makeDecoder(data);
      if (!this.decoder) return;
      this.waitingKey = false;
    }
    this.arrivals.set(index, rx);
    try {
      this.decoder.decode(new EncodedVideoChunk({
        type: key ? 'key' : 'delta', timestamp: index, data }));
    } catch (e) {
      this.lostStream(e.message);
    }
  }

  draw(index, image, rx, out) {
    const capture = this.capture.get(index);
    this.capture.delete(index);
    if (index <= this.lastDrawn && this.lastDrawn - index < 1 << 30) return;  // older, late
    this.lastDrawn = index;
    this.paint(image, capture);
    const paint = performance.now();
    const report = { t: 'frame', i: index, rx: rx ?? out, out, paint, shown: null };
    if (document.hidden) this.send(report);
    else requestAnimationFrame(() => { report.shown = performance.now(); this.send(report); });
  }
}
