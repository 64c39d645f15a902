// Audio worklets of Tern voice calls (loaded by call.js into a 48 kHz
// AudioContext).
//
// tern-capture: cuts the microphone (mixed to mono) into 20 ms frames of
// 960 samples and posts each to the page, which encodes it with WebCodecs.
//
// tern-player: plays the 960-sample frames the page posts, in order. It
// asks the page for a frame whenever fewer than `depth` are queued (2, up
// to 4 after underruns: the page answers a request a little later), so the
// page's jitter buffer is drained at exactly the audio clock's pace; when
// nothing is queued it plays silence and counts an underrun.
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
    this.q = [];
    this.off = 0;
    this.asked = 0;
    this.underruns = 0;
    this.depth = 2;
    this.quanta = 0; // since the last underrun
    this.playing = false;
    this.port.onmessage = (e) => {
      this.asked = Math.max(0, this.asked - 1);
      if (e.data && e.data.length) { this.q.push(e.data); this.playing = true; }
    };
  }
  process(inputs, outputs) {
    const out = outputs[0][0];
    let i = 0;
    while (i < out.length && this.q.length) {
      const f = this.q[0];
      const n = Math.min(out.length - i, f.length - this.off);
      out.set(f.subarray(this.off, this.off + n), i);
      i += n;
      this.off += n;
      if (this.off === f.length) { this.q.shift(); this.off = 0; }
    }
    this.quanta++;
    if (i < out.length) {
      out.fill(0, i);
      if (this.playing) {
        this.underruns++;
        if (this.quanta < 3750) this.depth = Math.min(4, this.depth + 1); // two within 10 s
        this.quanta = 0;
      }
    } else if (this.quanta > 37500 && this.depth > 2) { // 100 s without one
      this.depth--;
      this.quanta = 0;
    }
    let need = 0;
    while (this.q.length + this.asked < this.depth) { this.asked++; need++; }
    if (need) this.port.postMessage({ need, underruns: this.underruns, depth: this.depth });
    for (let c = 1; c < outputs[0].length; c++) outputs[0][c].set(out);
    return true;
  }
}
registerProcessor('tern-player', Player);
