// Tern web UI: charts of every radio neighbour on the network page (signal
// strength, signal-to-noise ratio, airtime used against the legal budget),
// from the readings the daemon keeps (GET /v1/radio). Drawn as inline SVG:
// no library, nothing loaded from the internet.
'use strict';
(() => {
  const $ = (s) => document.querySelector(s);
  const SVG = 'http://www.w3.org/2000/svg';

  function svg(tag, attrs) {
    const e = document.createElementNS(SVG, tag);
    for (const [k, v] of Object.entries(attrs || {})) e.setAttribute(k, String(v));
    return e;
  }

  // chart draws one series (points [{t, v}]) as a line over w x h, with the
  // latest value and its unit as the label.
  function chart(title, unit, points, opts = {}) {
    const w = 260, h = 64, pad = 4;
    const box = document.createElement('figure');
    box.className = 'radio-chart';
    box.dataset.series = opts.key || title;
    const cap = document.createElement('figcaption');
    const last = points.length ? points[points.length - 1].v : null;
    cap.textContent = title + ': ' + (last === null ? 'unknown' : (opts.fmt ? opts.fmt(last) : last.toFixed(1) + ' ' + unit));
    box.append(cap);
    const s = svg('svg', { viewBox: `0 0 ${w} ${h}`, width: w, height: h, role: 'img', 'aria-label': cap.textContent });
    s.append(svg('rect', { x: 0, y: 0, width: w, height: h, rx: 6, class: 'bg' }));
    if (points.length) {
      const t0 = points[0].t, t1 = Math.max(points[points.length - 1].t, t0 + 1);
      let lo = Math.min(...points.map((p) => p.v)), hi = Math.max(...points.map((p) => p.v));
      if (opts.max !== undefined) hi = Math.max(hi, opts.max);
      if (opts.min !== undefined) lo = Math.min(lo, opts.min);
      if (hi - lo < 1) { hi += 0.5; lo -= 0.5; }
      const x = (t) => pad + (w - 2 * pad) * (t - t0) / (t1 - t0);
      const y = (v) => h - pad - (h - 2 * pad) * (v - lo) / (hi - lo);
      if (opts.limit !== undefined) s.append(svg('line', { x1: pad, x2: w - pad, y1: y(opts.limit), y2: y(opts.limit), class: 'limit' }));
      const d = points.map((p, i) => (i ? 'L' : 'M') + x(p.t).toFixed(1) + ' ' + y(p.v).toFixed(1)).join(' ');
      s.append(svg('path', { d, class: 'line' }));
      s.dataset.points = String(points.length);
    } else {
      s.dataset.points = '0';
    }
    box.append(s);
    return box;
  }

  function render(hist) {
    const name = (a) => (window.tern && window.tern.nameOf ? window.tern.nameOf(a) : a.slice(0, 8));
    const cards = hist.map((r) => {
      const card = document.createElement('section');
      card.className = 'radio-card';
      card.dataset.neighbour = r.neighbour;
      const head = document.createElement('h3');
      head.textContent = `${name(r.neighbour)} over ${r.radio}`;
      card.append(head);
      const t = (s) => Date.parse(s.at);
      const pts = (f) => r.samples.filter((s) => typeof f(s) === 'number').map((s) => ({ t: t(s), v: f(s) }));
      card.append(chart('Signal', 'dBm', pts((s) => s.rssi), { key: 'rssi' }));
      card.append(chart('SNR', 'dB', pts((s) => s.snr), { key: 'snr' }));
      const last = r.samples[r.samples.length - 1] || {};
      const budget = (last.airtime_used_ms || 0) + (last.airtime_left_ms || 0);
      if (budget > 0) {
        card.append(chart('Airtime used', 's', pts((s) => s.airtime_used_ms / 1000), {
          key: 'airtime', min: 0, limit: budget / 1000,
          fmt: (v) => `${v.toFixed(1)} s of ${(budget / 1000).toFixed(0)} s allowed (${(100 * v * 1000 / budget).toFixed(1)} %)`,
        }));
      } else {
        const p = document.createElement('p');
        p.className = 'muted small';
        p.textContent = 'No airtime limit on this radio.';
        card.append(p);
      }
      return card;
    });
    $('#radios').replaceChildren(...cards);
    $('#no-radios').hidden = cards.length > 0;
  }

  async function refresh() {
    const view = $('#view-network');
    if (!view || view.hidden || !window.tern) return;
    try {
      render((await window.tern.api('GET', '/v1/radio')) || []);
    } catch (e) { /* the banner says why */ }
  }
  setInterval(refresh, 2000);
  // Also at once when the network page opens.
  new MutationObserver(refresh).observe(document.body, { subtree: true, attributes: true, attributeFilter: ['hidden'] });
})();
