// Audio worklets of Tern voice calls (loaded by call.js into a 48 kHz
// AudioContext). They run on the audio thread, so a busy page does not
// make the sound stutter.
//
// tern-capture: cuts the microphone (mixed to mono) into 20 ms frames of
// 960 samples and posts each to the page, which encodes it with WebCodecs.
//
// tern-player: the playout end of the jitter buffer. The page posts decoded
// 960-sample frames in sequence order, and {lost: true} for a frame that
// never came. The player waits until `target` frames are queued, then plays
// one frame per 20 ms of the audio clock. A lost frame, or an empty queue
// (underrun), is concealed: the last frame again at half its level, halving
// for each further one, then silence; after 5 frames of underrun it waits
// for `target` frames again. When more than target + 2 frames are queued
// (a burst, or the sender's sound card running faster than this one) it
// drops a frame to keep the delay down. Every 100 ms it reports its
// figures to the page.
'use strict';

const FRAME = 960;

class Capture extends AudioWorkletProcessor {
  constructor() {
    super();
    this.buf = new Float32Array(FRAME);
    this.n = 0;
  }
  process(inputs) {
    const chans = inputs[0];
    if (!chans || !chans.length) return true;
    const len = chans[0].length;
    for (let i = 0; i < len; i++) {
      let v = 0;
      for (const ch of chans) v += ch[i];
      this.buf[this.n++] = v / chans.length;
      if (this.n === FRAME) {
        this.port.postMessage(this.buf, [this.buf.buffer]);
        this.buf = new Float32Array(FRAME);
        this.n = 0;
      }
    }
    return true;
  }
}
registerProcessor('tern-capture', Capture);

class Player extends AudioWorkletProcessor {
  constructor() {
    super();
    this.q = [];             // Float32Array frames, or null for a lost one
    this.cur = null;         // the frame being played
    this.off = 0;
    this.target = 3;
    this.playing = false;
    this.dry = 0;            // consecutive frames of underrun
    this.last = null;        // last real frame, for concealment
    this.fade = 1;
    this.n = { played: 0, concealed: 0, underruns: 0, skipped: 0, rebuffers: 0 };
    this.quanta = 0;
    this.port.onmessage = (e) => {
      const m = e.data;
      if (m.target) this.target = m.target;
      if (m.frame) this.q.push(m.frame);
      if (m.lost) this.q.push(null);
    };
  }

  // next picks the frame to play for the next 20 ms.
  next() {
    if (!this.playing) {
      if (this.q.length < this.target) return null;
      this.playing = true;
    }
    while (this.q.length > this.target + 2) { this.q.shift(); this.n.skipped++; }
    if (this.q.length) {
      const f = this.q.shift();
      this.dry = 0;
      if (f) { this.last = f; this.fade = 1; this.n.played++; return f; }
      return this.conceal();
    }
    this.n.underruns++;
    if (++this.dry >= 5) { this.playing = false; this.n.rebuffers++; }
    return this.conceal();
  }

  conceal() {
    this.n.concealed++;
    this.fade *= 0.5;
    const out = new Float32Array(FRAME);
    if (this.last && this.fade > 0.06) for (let i = 0; i < FRAME; i++) out[i] = this.last[i] * this.fade;
    return out;
  }

  process(inputs, outputs) {
    const out = outputs[0][0];
    let i = 0;
    while (i < out.length) {
      if (!this.cur) {
        this.cur = this.next();
        this.off = 0;
        if (!this.cur) { out.fill(0, i); break; } // still buffering
      }
      const n = Math.min(out.length - i, FRAME - this.off);
      out.set(this.cur.subarray(this.off, this.off + n), i);
      i += n;
      this.off += n;
      if (this.off === FRAME) this.cur = null;
    }
    for (let c = 1; c < outputs[0].length; c++) outputs[0][c].set(out);
    if (++this.quanta % 37 === 0) this.port.postMessage(Object.assign({ queued: this.q.length, playing: this.playing }, this.n));
    return true;
  }
}
registerProcessor('tern-player', Player);
