// Tern voice calls in the web UI: the call button of a conversation, the
// incoming-call panel, the in-call panel (mute, hang up, timer, live
// latency, jitter and loss), call records in the conversation, and the
// audio path. Calls are set up through the local API (/v1/calls, see
// api/calls.go); the audio goes over the media socket to this node's own
// daemon, which encrypts it for the network. Keys never reach the page.
//
// Sending: microphone -> AudioContext at 48 kHz -> tern-capture worklet
// (mono, 20 ms frames) -> WebCodecs AudioEncoder (Opus, 32 kbit/s) -> socket.
// Receiving: socket -> reordering by sequence number -> AudioDecoder ->
// tern-player worklet, which holds the jitter buffer on the audio thread:
// its playout target adapts between 40 and 200 ms to the measured jitter
// and to underruns. Loss concealment: WebCodecs cannot be told a packet is
// missing (no Opus PLC entry point), so the player replaces a lost frame by
// the last decoded frame at half its level, halving again for each further
// loss, then silence.
'use strict';
(() => {
  const T = window.tern; // the bridge app.js exports
  if (!T) return;
  const $ = (s, el = document) => el.querySelector(s);
  const FRAME = 960; // samples per 20 ms frame at 48 kHz
  const el = (tag, cls, text) => {
    const e = document.createElement(tag);
    if (cls) e.className = cls;
    if (text !== undefined) e.textContent = text;
    return e;
  };
  const fmtDur = (ms) => {
    const s = Math.max(0, Math.round(ms / 1000));
    return Math.floor(s / 60) + ':' + String(s % 60).padStart(2, '0');
  };

  // ---- the panel ----------------------------------------------------------
  const panel = el('section', 'call-panel');
  panel.id = 'call-panel';
  panel.hidden = true;
  panel.setAttribute('role', 'dialog');
  panel.setAttribute('aria-label', 'Voice call');
  const peerEl = el('h2', 'call-peer'); peerEl.id = 'call-peer';
  const stateEl = el('p', 'call-state muted'); stateEl.id = 'call-state'; stateEl.setAttribute('role', 'status');
  const timerEl = el('p', 'call-timer'); timerEl.id = 'call-timer';
  const errEl = el('p', 'error'); errEl.id = 'call-error'; errEl.setAttribute('role', 'alert');
  const stats = el('dl', 'call-stats'); stats.id = 'call-stats';
  const stat = (id, label) => {
    const d = el('div'); const dd = el('dd', '', '\u2013'); dd.id = 'call-stat-' + id;
    d.append(el('dt', '', label), dd); stats.append(d); return dd;
  };
  const sLatency = stat('latency', 'Latency'), sJitter = stat('jitter', 'Jitter'), sLoss = stat('loss', 'Loss');
  const buttons = el('div', 'call-buttons');
  const btn = (id, text, cls) => { const b = el('button', cls, text); b.id = id; b.type = 'button'; buttons.append(b); return b; };
  const bAccept = btn('call-accept', 'Accept', 'primary');
  const bDecline = btn('call-decline', 'Decline', 'danger');
  const bMute = btn('call-mute', 'Mute');
  const bHangup = btn('call-hangup', 'Hang up', 'danger');
  const bClose = btn('call-close', 'Close');
  panel.append(peerEl, stateEl, timerEl, stats, errEl, buttons);
  document.body.append(panel);

  // The call button in the conversation header.
  const callBtn = el('button', '', 'Call');
  callBtn.id = 'chat-call';
  callBtn.type = 'button';
  callBtn.setAttribute('aria-label', 'Voice call');
  const verify = $('#chat-verify');
  if (verify) verify.before(callBtn);

  // ---- state ---------------------------------------------------------------
  let cur = null;      // the Record of the call the panel shows
  let media = null;    // its audio, while ringing out or active
  let lastStats = null;
  const cache = new Map(); // peer -> [Record]

  function show(rec) {
    cur = rec;
    panel.hidden = false;
    peerEl.textContent = rec.peer_name || T.nameOf(rec.peer);
    panel.dataset.state = rec.state;
    const ringingIn = rec.state === 'ringing' && rec.incoming;
    const live = rec.state === 'ringing' || rec.state === 'active';
    bAccept.hidden = bDecline.hidden = !ringingIn;
    bHangup.hidden = !live || ringingIn;
    bMute.hidden = rec.state !== 'active';
    bClose.hidden = live;
    stats.hidden = rec.state !== 'active';
    stateEl.textContent = {
      ringing: rec.incoming ? 'is calling you\u2026' : 'Calling\u2026',
      active: 'Connected, encrypted end to end',
      missed: 'Missed call',
      ended: 'Call ended',
    }[rec.state] || rec.state;
    if (!live && rec.reason) errEl.textContent = rec.reason;
    if (live) errEl.textContent = '';
    tick();
  }

  function hide() { panel.hidden = true; cur = null; errEl.textContent = ''; }

  function tick() {
    if (!cur) return;
    if (cur.state === 'active' && cur.answered) timerEl.textContent = fmtDur(Date.now() - cur.answered);
    else if (cur.state === 'ended' && cur.answered && cur.ended) timerEl.textContent = fmtDur(cur.ended - cur.answered);
    else timerEl.textContent = '';
  }
  setInterval(tick, 1000);

  function paintStats(s) {
    lastStats = s;
    const buffered = media ? media.bufferMs() : 0;
    // What the listener hears is late by the network, the frames queued in
    // the player and one frame of capture.
    const total = s.latency_ms + buffered + 20;
    sLatency.textContent = Math.round(total) + ' ms';
    sLatency.title = `network ${s.latency_ms.toFixed(1)} ms (round trip ${s.rtt_ms.toFixed(1)} ms), buffer ${buffered} ms`;
    sLatency.dataset.network = String(s.latency_ms);
    sJitter.textContent = s.jitter_ms.toFixed(1) + ' ms';
    sLoss.textContent = s.loss_percent.toFixed(1) + ' %';
    sLoss.dataset.value = String(s.loss_percent);
    if (s.send_problem) errEl.textContent = s.send_problem;
    else if (cur && cur.state === 'active') errEl.textContent = '';
  }

  // ---- actions -------------------------------------------------------------
  callBtn.addEventListener('click', async () => {
    const peer = T.currentChat();
    if (!peer || T.state.groups.has(peer) || (cur && (cur.state === 'ringing' || cur.state === 'active'))) return; // calls are 1:1
    try {
      const rec = await T.api('POST', '/v1/calls', { to: peer });
      show(rec);
      media = new Media(rec.id);
      media.start(true);
    } catch (e) {
      show({ peer, peer_name: T.nameOf(peer), state: 'ended', incoming: false });
      stateEl.textContent = 'Call not possible';
      errEl.textContent = e.message;
      refreshRecords(peer);
    }
  });
  bAccept.addEventListener('click', async () => {
    if (!cur) return;
    try {
      const rec = await T.api('POST', `/v1/calls/${cur.id}/accept`);
      show(rec);
      media = new Media(rec.id);
      media.start(false);
    } catch (e) { errEl.textContent = e.message; }
  });
  bDecline.addEventListener('click', () => act('decline'));
  bHangup.addEventListener('click', () => act('hangup'));
  bClose.addEventListener('click', hide);
  bMute.addEventListener('click', () => {
    if (!media) return;
    media.muted = !media.muted;
    bMute.setAttribute('aria-pressed', String(media.muted));
    bMute.textContent = media.muted ? 'Unmute' : 'Mute';
  });
  async function act(what) {
    if (!cur) return;
    try { show(await T.api('POST', `/v1/calls/${cur.id}/${what}`)); } catch (e) { errEl.textContent = e.message; }
    stopMedia();
  }
  function stopMedia() { if (media) { media.stop(); media = null; } }

  // ---- call events ---------------------------------------------------------
  function onCall(rec) {
    const list = cache.get(rec.peer);
    if (list) {
      const i = list.findIndex((r) => r.id === rec.id);
      if (i < 0) list.push(rec); else list[i] = rec;
    }
    if (rec.peer === T.currentChat()) T.rerender();
    const live = rec.state === 'ringing' || rec.state === 'active';
    if (cur && cur.id === rec.id) {
      show(rec);
      if (!live) { stopMedia(); setTimeout(() => { if (cur && cur.id === rec.id) hide(); }, 4000); }
      return;
    }
    // A new call, or news of one missed while this page was elsewhere.
    if ((live || rec.state === 'missed') && (!cur || (cur.state !== 'ringing' && cur.state !== 'active'))) show(rec);
  }

  async function events() {
    for (let delay = 500; ; delay = Math.min(delay * 2, 5000)) {
      try {
        const r = await fetch('/v1/calls/events', { headers: T.authHeaders(), credentials: 'same-origin' });
        if (r.status === 401) return;
        if (!r.ok || !r.body) throw new Error('call events: ' + r.status);
        delay = 500;
        const reader = r.body.pipeThrough(new TextDecoderStream()).getReader();
        let buf = '';
        for (;;) {
          const { value, done } = await reader.read();
          if (done) break;
          buf += value;
          let i;
          while ((i = buf.indexOf('\n')) >= 0) {
            const line = buf.slice(0, i);
            buf = buf.slice(i + 1);
            if (line.trim()) { try { onCall(JSON.parse(line).call); } catch (err) { /* skip a bad line */ } }
          }
        }
      } catch (err) { /* retry */ }
      await new Promise((res) => setTimeout(res, delay));
    }
  }

  // ---- call records in the conversation -----------------------------------
  async function refreshRecords(peer) {
    try {
      cache.set(peer, (await T.api('GET', '/v1/calls?limit=200&peer=' + encodeURIComponent(peer))) || []);
      if (peer === T.currentChat()) T.rerender();
    } catch (e) { /* the chat still works */ }
  }

  function describe(r) {
    const dur = r.answered && r.ended ? ' \u00b7 ' + fmtDur(r.ended - r.answered) : '';
    if (r.state === 'missed') return 'Missed call';
    if (r.state === 'ringing') return r.incoming ? 'Incoming call, ringing' : 'Calling\u2026';
    if (r.state === 'active') return 'Call in progress';
    if (r.answered) return (r.incoming ? 'Incoming call' : 'Outgoing call') + dur;
    return r.incoming ? 'Call not answered' : 'Call not connected';
  }

  function callItem(r) {
    const li = el('li', 'msg call-rec ' + (r.incoming ? 'in' : 'out'));
    li.dataset.callId = r.id;
    li.dataset.state = r.state;
    li.dataset.time = String(r.started);
    const b = el('div', 'bubble');
    b.append(el('p', 'text', '\u260E ' + describe(r)));
    if (r.reason && !r.answered) b.append(el('p', 'note', r.reason));
    const meta = el('div', 'meta');
    meta.append(el('time', '', new Date(r.started).toLocaleTimeString([], { hour: '2-digit', minute: '2-digit' })));
    b.append(meta);
    li.append(b);
    return li;
  }

  document.addEventListener('tern:messages', (ev) => {
    const { peer, list } = ev.detail;
    if (!peer || T.state.groups.has(peer)) return; // a group has no calls
    if (!cache.has(peer)) { cache.set(peer, []); refreshRecords(peer); return; }
    const recs = cache.get(peer);
    if (!recs.length) return;
    const empty = list.querySelector('li.empty');
    if (empty) empty.remove();
    const items = Array.from(list.children);
    for (const r of recs) {
      const li = callItem(r);
      const after = items.find((x) => Number(x.dataset.time || 0) > r.started);
      list.insertBefore(li, after || null);
    }
  });

  // ---- audio ---------------------------------------------------------------
  class Media {
    constructor(id) {
      this.id = id;
      this.muted = false;
      this.txSeq = 0;
      this.capTicks = 0;
      this.jb = new Map();      // seq -> Uint8Array (Opus), waiting for its turn
      this.next = null;         // next sequence number to decode; null: none yet
      this.maxSeq = -1;
      this.target = 3;          // playout target in frames (40..200 ms: 2..10)
      this.bumps = 0;           // extra target after underruns
      this.slots = [];          // frames on their way to the player, in order
      this.pending = [];        // slots waiting for the decoder
      this.jitter = 0;          // ms, measured here (see onFrame)
      this.ring = new Float32Array(9600); // the last 200 ms decoded, for the test
      this.ringPos = 0;
      this.n = { received: 0, decoded: 0, late: 0, lost: 0 };
      this.player = null;
      this.pl = { queued: 0, played: 0, concealed: 0, underruns: 0, skipped: 0, rebuffers: 0 };
      this.stopped = false;
    }

    async start(outgoing) {
      try {
        this.ac = new AudioContext({ sampleRate: 48000, latencyHint: 'interactive' });
        await this.ac.audioWorklet.addModule('call-worklet.js');
        this.mic = await navigator.mediaDevices.getUserMedia({ audio: { channelCount: 1, echoCancellation: true, noiseSuppression: false, autoGainControl: false } });
        if (this.stopped) { this.stop(); return; }
        await this.ac.resume();
        this.player = new AudioWorkletNode(this.ac, 'tern-player', { numberOfInputs: 0, outputChannelCount: [1] });
        this.player.port.onmessage = (ev) => {
          if (ev.data.underruns > this.pl.underruns && ev.data.playing) this.bumps = Math.min(6, this.bumps + 1);
          this.pl = ev.data;
        };
        this.player.connect(this.ac.destination);
        this.startDecoder();
        this.openSocket();
        this.enc = new AudioEncoder({ output: (c) => this.onEncoded(c), error: (e) => this.problem('The audio encoder failed: ' + e.message) });
        this.enc.configure({ codec: 'opus', sampleRate: 48000, numberOfChannels: 1, bitrate: 32000, opus: { frameDuration: 20000 } });
        this.src = this.ac.createMediaStreamSource(this.mic);
        this.cap = new AudioWorkletNode(this.ac, 'tern-capture', { channelCount: 1, channelCountMode: 'explicit' });
        this.cap.port.onmessage = (ev) => this.onCaptured(ev.data);
        this.src.connect(this.cap);
      } catch (e) {
        const why = typeof AudioEncoder === 'undefined' ? 'This browser has no WebCodecs audio (AudioEncoder): use a current Chromium, Chrome or Edge.'
          : e.name === 'NotAllowedError' ? 'The microphone is blocked: allow it for this page and call again.'
            : 'Audio could not start: ' + e.message;
        this.problem(why);
        if (!outgoing) act('hangup');
      }
    }

    problem(msg) { errEl.textContent = msg; }

    openSocket() {
      const protos = ['tern.media.v1'];
      const tok = T.token();
      if (tok) protos.push('tern-token.' + tok);
      const ws = new WebSocket(`${location.protocol === 'https:' ? 'wss' : 'ws'}://${location.host}/v1/calls/${this.id}/media`, protos);
      ws.binaryType = 'arraybuffer';
      ws.onmessage = (ev) => {
        if (typeof ev.data !== 'string') { this.onFrame(ev.data); return; }
        let m;
        try { m = JSON.parse(ev.data); } catch (e) { return; }
        if (m.type === 'stats') { this.adapt(m.stats); paintStats(m.stats); }
        if (m.type === 'state' && m.call) onCall(m.call);
      };
      ws.onclose = () => {
        if (!this.stopped && cur && cur.id === this.id && cur.state === 'active') this.problem('Lost the audio connection to your Tern node.');
      };
      this.ws = ws;
    }

    // Sending ---------------------------------------------------------------
    onCaptured(pcm) {
      if (!this.enc || this.enc.state !== 'configured') return;
      if (this.muted) pcm.fill(0);
      const ad = new AudioData({ format: 'f32-planar', sampleRate: 48000, numberOfFrames: FRAME, numberOfChannels: 1,
        timestamp: Math.round(this.capTicks * 1e6 / 48000), data: pcm });
      this.capTicks += FRAME;
      this.enc.encode(ad);
      ad.close();
    }

    onEncoded(chunk) {
      if (!this.ws || this.ws.readyState !== WebSocket.OPEN) return;
      const buf = new Uint8Array(8 + chunk.byteLength);
      const dv = new DataView(buf.buffer);
      dv.setUint32(0, this.txSeq++ >>> 0);
      dv.setUint32(4, Math.round(chunk.timestamp * 48000 / 1e6) >>> 0);
      chunk.copyTo(buf.subarray(8));
      this.ws.send(buf);
    }

    // Receiving -------------------------------------------------------------
    // onFrame puts a frame in sequence order: frames are decoded as soon as
    // their turn comes; a missing one is given up once two newer frames
    // have arrived (40 ms of reordering), and then concealed by the player.
    onFrame(ab) {
      if (ab.byteLength < 8) return;
      const dv = new DataView(ab);
      const seq = dv.getUint32(0);
      this.n.received++;
      // End-to-end jitter as this page sees it (RFC 3550 estimator on the
      // capture timestamps): capture, both sockets and the network.
      const transit = performance.now() - dv.getUint32(4) / 48;
      if (this.transit !== undefined) this.jitter += (Math.abs(transit - this.transit) - this.jitter) / 16;
      this.transit = transit;
      if (this.next === null) this.next = seq;
      if (seq < this.next) { this.n.late++; return; }
      this.jb.set(seq, new Uint8Array(ab, 8));
      if (seq > this.maxSeq) this.maxSeq = seq;
      for (;;) {
        const data = this.jb.get(this.next);
        if (data) { this.jb.delete(this.next++); this.decode(data); continue; }
        if (this.maxSeq - this.next < 2) break;
        // Given up: a short gap is concealed frame by frame; for a long one
        // the player has already covered the silence.
        const gap = Math.min(...this.jb.keys()) - this.next;
        this.n.lost += gap;
        if (gap <= 3) for (let i = 0; i < gap; i++) this.lostFrame();
        this.next += gap;
      }
    }

    // adapt sets the playout target from the jitter (the larger of the
    // daemon's network figure and this page's end-to-end one) and from the
    // player's underruns.
    adapt(s) {
      const j = Math.max(s.jitter_ms, this.jitter);
      const want = Math.ceil((20 + 3 * j) / 20) + this.bumps;
      const target = Math.min(10, Math.max(2, want));
      if (target !== this.target && this.player) this.player.port.postMessage({ target });
      this.target = target;
      if (this.bumps > 0 && Math.random() < 0.02) this.bumps--; // relax slowly (about every 25 s)
    }

    bufferMs() { return (this.pl.queued || 0) * 20; }

    startDecoder() {
      this.dec = new AudioDecoder({
        output: (ad) => {
          const pcm = new Float32Array(FRAME);
          const tmp = new Float32Array(ad.numberOfFrames);
          ad.copyTo(tmp, { planeIndex: 0, format: 'f32-planar' });
          ad.close();
          pcm.set(tmp.subarray(0, FRAME));
          this.n.decoded++;
          for (let i = 0; i < pcm.length; i++) { this.ring[this.ringPos] = pcm[i]; this.ringPos = (this.ringPos + 1) % this.ring.length; }
          const slot = this.pending.shift();
          if (slot) slot.pcm = pcm;
          this.flush();
        },
        error: () => {
          // A decoder that failed is closed: what it held is lost; start anew.
          for (const s of this.pending) s.lost = true;
          this.pending = [];
          this.flush();
          if (!this.stopped) this.startDecoder();
        },
      });
      this.dec.configure({ codec: 'opus', sampleRate: 48000, numberOfChannels: 1 });
      this.decTs = 0;
    }

    decode(data) {
      const slot = { pcm: null, lost: false };
      this.slots.push(slot);
      this.pending.push(slot);
      try {
        this.dec.decode(new EncodedAudioChunk({ type: 'key', timestamp: this.decTs, data }));
      } catch (e) {
        this.pending.pop();
        slot.lost = true;
      }
      this.decTs += 20000;
      this.flush();
    }

    lostFrame() { this.slots.push({ pcm: null, lost: true }); this.flush(); }

    // flush hands finished slots to the player, in order.
    flush() {
      while (this.slots.length && (this.slots[0].pcm || this.slots[0].lost)) {
        const s = this.slots.shift();
        if (!this.player) continue;
        if (s.pcm) this.player.port.postMessage({ frame: s.pcm }, [s.pcm.buffer]);
        else this.player.port.postMessage({ lost: true });
      }
    }

    stop() {
      this.stopped = true;
      try { if (this.ws) this.ws.close(); } catch (e) { /* closed */ }
      try { if (this.enc && this.enc.state !== 'closed') this.enc.close(); } catch (e) { /* closed */ }
      try { if (this.dec && this.dec.state !== 'closed') this.dec.close(); } catch (e) { /* closed */ }
      if (this.mic) for (const t of this.mic.getTracks()) t.stop();
      if (this.ac) this.ac.close();
    }

    // dominant is the strongest frequency (Goertzel, 100 Hz to 4 kHz in 5 Hz
    // steps) of the last 200 ms of decoded audio, and its RMS level.
    dominant() {
      const x = this.ring;
      let best = 0, freq = 0, rms = 0;
      for (const v of x) rms += v * v;
      for (let f = 100; f <= 4000; f += 5) {
        const c = 2 * Math.cos(2 * Math.PI * f / 48000);
        let s1 = 0, s2 = 0;
        for (let i = 0; i < x.length; i++) { const s = x[i] + c * s1 - s2; s2 = s1; s1 = s; }
        const p = s1 * s1 + s2 * s2 - c * s1 * s2;
        if (p > best) { best = p; freq = f; }
      }
      return { freq, rms: Math.sqrt(rms / x.length) };
    }
  }

  // What the page decoded, for tests and for debugging a call.
  window.ternCall = {
    debug() {
      if (!media) return null;
      return Object.assign({ jitter: media.jitter, target: media.target, buffered: media.bufferMs(), stats: lastStats,
        player: media.pl }, media.n, media.dominant());
    },
  };

  events();
})();
