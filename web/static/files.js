// Tern web UI: file transfers. An attach button in the composer uploads a
// file to the node (POST /v1/files), which sends it in chunks; both sides
// show a file bubble with a progress bar in the conversation, updated live
// from the event stream, and a download button once a file is received.
// In a group conversation the button sends to every member: the sender
// sees one bubble for the file whose bar sums the members' progress, with
// each member's state in a details line (and on hover); receivers see it
// in the group, from its sender. Uses the hooks app.js exposes as
// window.tern.
'use strict';
(() => {
  const T = window.tern;
  if (!T) return;
  const { el, fmtBytes, state: S } = T;
  const $ = (s, root = document) => root.querySelector(s);
  const transfers = new Map(); // id -> transfer (GET /v1/files shape)

  // ---- composer: attach ---------------------------------------------------
  const composer = $('#composer');
  const input = document.createElement('input');
  input.type = 'file';
  input.id = 'file-input';
  input.hidden = true;
  const attach = el('button', 'attach', 'File');
  attach.type = 'button';
  attach.id = 'composer-attach';
  attach.setAttribute('aria-label', 'Send a file');
  attach.title = 'Send a file';
  composer.prepend(attach);
  composer.append(input);
  attach.addEventListener('click', () => input.click());
  input.addEventListener('change', () => {
    const f = input.files && input.files[0];
    input.value = '';
    if (f && S.open) upload(f, S.open);
  });

  async function upload(file, to) {
    const fd = new FormData();
    fd.append('to', to); // fields before the file: the node streams the file part
    fd.append('file', file, file.name);
    attach.disabled = true;
    T.banner('Preparing ' + file.name + '\u2026');
    try {
      const r = await fetch('/v1/files', { method: 'POST', headers: T.authHeaders(), credentials: 'same-origin', body: fd });
      const data = await r.json().catch(() => ({}));
      if (!r.ok) throw new Error(data.error || r.statusText);
      T.banner('');
      for (const t of data.transfers || [data]) put(t); // a group's batch, or one transfer
      S.forceScroll = true;
      T.renderMessages();
    } catch (e) {
      T.banner('File not sent: ' + e.message);
    } finally {
      attach.disabled = false;
    }
  }

  // ---- state --------------------------------------------------------------
  function put(t) {
    const old = transfers.get(t.id);
    // Events may arrive out of order: never go back in progress.
    if (old && old.state === t.state && old.bytes > t.bytes) return;
    transfers.set(t.id, t);
  }

  async function load() {
    try {
      for (const t of (await T.api('GET', '/v1/files')) || []) put(t);
      if (S.open && S.view === 'chat') T.renderMessages();
    } catch (e) { /* the banner says it; the next event stream catches up */ }
  }

  // ---- bubbles ------------------------------------------------------------
  function statusText(t) {
    const who = t.peer_name || T.nameOf(t.peer);
    if (t.incoming) {
      return { receiving: 'Receiving', done: 'Received', failed: 'Failed', cancelled: 'Cancelled' }[t.state] || t.state;
    }
    return { queued: 'Waiting for ' + who + ' to answer', sending: 'Sending', done: 'Delivered', failed: 'Not delivered', cancelled: 'Cancelled' }[t.state] || t.state;
  }

  function fileBubble(t) {
    const li = el('li', 'msg file ' + (t.incoming ? 'in' : 'out'));
    li.dataset.file = t.id;
    li.dataset.state = t.state;
    li.dataset.time = t.created;
    const b = el('div', 'bubble');
    if (t.incoming && t.group) b.append(el('span', 'from', t.peer_name || T.nameOf(t.peer)));
    const head = el('div', 'file-head');
    const icon = el('span', 'file-icon');
    icon.setAttribute('aria-hidden', 'true');
    head.append(icon, el('span', 'file-name', t.name));
    b.append(head);
    const pct = t.size ? Math.floor((100 * t.bytes) / t.size) : 100;
    const bar = document.createElement('progress');
    bar.className = 'file-bar';
    bar.max = Math.max(t.size, 1);
    bar.value = t.size ? t.bytes : 1;
    bar.setAttribute('aria-label', `${t.name}: ${pct}%`);
    b.append(bar);
    const meta = el('div', 'meta');
    meta.append(el('span', 'file-progress', t.state === 'done' ? fmtBytes(t.size) : `${pct}% \u00b7 ${fmtBytes(t.bytes)} of ${fmtBytes(t.size)}`));
    meta.append(el('time', '', T.fmtTime(t.created)));
    const st = el('span', 'status', statusText(t));
    st.dataset.state = t.state === 'done' ? 'delivered' : t.state;
    meta.append(st);
    b.append(meta);
    const actions = el('div', 'file-actions');
    if (t.incoming && t.state === 'done') {
      const dl = el('button', 'download primary', 'Download');
      dl.type = 'button';
      dl.addEventListener('click', () => download(t, dl));
      actions.append(dl);
    }
    if (!t.incoming && t.note && !t.over_radio && t.state !== 'done') {
      const radio = el('button', 'over-radio', 'Send over radio anyway');
      radio.type = 'button';
      radio.addEventListener('click', () => act('POST', '/v1/files/' + t.id + '/over-radio'));
      actions.append(radio);
    }
    if (t.state === 'queued' || t.state === 'sending' || t.state === 'receiving') {
      const x = el('button', 'cancel', 'Cancel');
      x.type = 'button';
      x.addEventListener('click', () => act('DELETE', '/v1/files/' + t.id));
      actions.append(x);
    }
    if (actions.childElementCount) b.append(actions);
    li.append(b);
    if (t.error && t.state !== 'done') li.append(el('p', 'note', t.error));
    else if (t.note && (t.incoming || t.state !== 'done')) li.append(el('p', 'note', t.note)); // incoming: why it is not in a group
    return li;
  }

  async function act(method, path) {
    try { put(await T.api(method, path)); T.renderMessages(); } catch (e) { T.banner(e.message); }
  }

  async function download(t, btn) {
    btn.disabled = true;
    try {
      const r = await fetch('/v1/files/' + encodeURIComponent(t.id) + '/content', { headers: T.authHeaders(), credentials: 'same-origin' });
      if (!r.ok) throw new Error((await r.json().catch(() => ({}))).error || r.statusText);
      const url = URL.createObjectURL(await r.blob());
      const a = document.createElement('a');
      a.href = url;
      a.download = t.name;
      a.hidden = true;
      document.body.append(a);
      a.click();
      a.remove();
      setTimeout(() => URL.revokeObjectURL(url), 60000);
      btn.textContent = 'Downloaded';
    } catch (e) {
      T.banner('Download failed: ' + e.message);
    } finally {
      btn.disabled = false;
    }
  }

  // ---- a file sent to a group: one bubble over its members' transfers ----
  const memberState = (t) => ({
    queued: 'waiting', sending: `${t.size ? Math.floor((100 * t.bytes) / t.size) : 0}%`,
    done: 'delivered', failed: 'not delivered', cancelled: 'cancelled',
  }[t.state] || t.state);

  function batchBubble(id, ts) {
    const n = ts.length;
    const count = (...sts) => ts.filter((t) => sts.includes(t.state)).length;
    const d = count('done'), failed = count('failed', 'cancelled'), open = n - d - failed;
    const state = d === n ? 'done' : open === 0 ? 'failed' : (count('sending') || d) ? 'sending' : 'queued';
    const bytes = ts.reduce((a, t) => a + t.bytes, 0), total = ts.reduce((a, t) => a + t.size, 0);
    const first = ts[0];
    const li = el('li', 'msg file out batch');
    li.dataset.batch = id;
    li.dataset.state = state;
    li.dataset.delivered = String(d);
    li.dataset.members = String(n);
    li.dataset.time = String(Math.min(...ts.map((t) => t.created)));
    const b = el('div', 'bubble');
    const head = el('div', 'file-head');
    const icon = el('span', 'file-icon');
    icon.setAttribute('aria-hidden', 'true');
    head.append(icon, el('span', 'file-name', first.name));
    b.append(head);
    const pct = total ? Math.floor((100 * bytes) / total) : 100;
    const bar = document.createElement('progress');
    bar.className = 'file-bar';
    bar.max = Math.max(total, 1);
    bar.value = total ? bytes : 1;
    bar.setAttribute('aria-label', `${first.name}: ${pct}% over ${n} members`);
    b.append(bar);
    const meta = el('div', 'meta');
    meta.append(el('span', 'file-progress', state === 'done' ? fmtBytes(first.size) : `${pct}% \u00b7 ${fmtBytes(first.size)} to ${n}`));
    meta.append(el('time', '', T.fmtTime(first.created)));
    const text = {
      done: n > 1 ? 'Delivered to everyone' : 'Delivered',
      failed: `Delivered to ${d} of ${n}`,
      sending: `Sending \u00b7 delivered to ${d} of ${n}`,
      queued: 'Waiting for the members to answer',
    }[state];
    const who = (t) => t.peer_name || T.nameOf(t.peer);
    const st = el('span', 'status', text);
    st.dataset.state = state === 'done' ? 'delivered' : state;
    st.title = ts.map((t) => `${who(t)}: ${memberState(t)}`).join('\n');
    meta.append(st);
    b.append(meta);
    b.append(el('p', 'file-members', ts.map((t) => `${who(t)}: ${memberState(t)}`).join(' \u00b7 ')));
    const actions = el('div', 'file-actions');
    const held = ts.filter((t) => t.note && !t.over_radio && t.state !== 'done');
    if (held.length) {
      const radio = el('button', 'over-radio', 'Send over radio anyway');
      radio.type = 'button';
      radio.addEventListener('click', () => actAll(held, 'POST', '/over-radio'));
      actions.append(radio);
    }
    if (open) {
      const x = el('button', 'cancel', 'Cancel');
      x.type = 'button';
      x.addEventListener('click', () => actAll(ts.filter((t) => t.state === 'queued' || t.state === 'sending'), 'DELETE', ''));
      actions.append(x);
    }
    if (actions.childElementCount) b.append(actions);
    li.append(b);
    const problems = ts.filter((t) => t.state !== 'done' && (t.error || t.note)).map((t) => `${who(t)}: ${t.error || t.note}`);
    if (problems.length) li.append(el('p', 'note', problems.join('\n')));
    return li;
  }

  async function actAll(ts, method, suffix) {
    try {
      for (const t of ts) put(await T.api(method, '/v1/files/' + t.id + suffix));
      T.renderMessages();
    } catch (e) { T.banner(e.message); }
  }

  // Where a transfer shows: its group's conversation, else its peer's.
  const home = (t) => t && (t.group || t.peer);
  const batchOf = (id) => [...transfers.values()].filter((t) => t.batch === id && !t.incoming);

  function place(list, li) {
    const at = Number(li.dataset.time);
    for (const c of list.children) {
      if (Number(c.dataset.time) > at) { list.insertBefore(li, c); return; }
    }
    list.append(li);
  }

  T.hooks.render.push((list, peer) => {
    const mine = [...transfers.values()].filter((t) => home(t) === peer);
    if (!mine.length) return;
    const empty = $('li.empty', list);
    if (empty) empty.remove();
    const batches = new Set();
    for (const t of mine) {
      if (t.batch && !t.incoming) batches.add(t.batch);
      else place(list, fileBubble(t));
    }
    for (const id of batches) place(list, batchBubble(id, batchOf(id)));
  });

  T.hooks.event.push((e) => {
    if (e.type !== 'file' || !e.file) return;
    const before = transfers.get(e.file.id);
    put(e.file);
    const t = transfers.get(e.file.id);
    if (S.view !== 'chat' || (home(t) !== S.open && home(before) !== S.open)) return;
    const moved = before && home(before) !== home(t); // a group label judged late
    const old = moved ? null : document.querySelector(t.batch && !t.incoming ? `#messages li[data-batch="${t.batch}"]` : `#messages li[data-file="${t.id}"]`);
    if (!old) T.renderMessages();
    else old.replaceWith(t.batch && !t.incoming ? batchBubble(t.batch, batchOf(t.batch)) : fileBubble(t));
  });

  load();
  // Catch up now and then (an event stream that reconnected may have
  // missed some progress).
  setInterval(() => { if (!document.hidden) load(); }, 10000);
})();
