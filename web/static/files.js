// Tern web UI: file transfers. An attach button in the composer uploads a
// file to the node (POST /v1/files), which sends it in chunks; both sides
// show a file bubble with a progress bar in the conversation, updated live
// from the event stream, and a download button once a file is received.
// Uses the hooks app.js exposes as window.tern.
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
      put(data);
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
    else if (t.note && t.state !== 'done') li.append(el('p', 'note', t.note));
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

  function place(list, li) {
    const at = Number(li.dataset.time);
    for (const c of list.children) {
      if (Number(c.dataset.time) > at) { list.insertBefore(li, c); return; }
    }
    list.append(li);
  }

  T.hooks.render.push((list, peer) => {
    const mine = [...transfers.values()].filter((t) => t.peer === peer);
    if (!mine.length) return;
    const empty = $('li.empty', list);
    if (empty) empty.remove();
    for (const t of mine) place(list, fileBubble(t));
  });

  T.hooks.event.push((e) => {
    if (e.type !== 'file' || !e.file) return;
    put(e.file);
    if (e.file.peer !== S.open || S.view !== 'chat') return;
    const t = transfers.get(e.file.id);
    const old = document.querySelector(`#messages li[data-file="${t.id}"]`);
    if (old) old.replaceWith(fileBubble(t));
    else T.renderMessages();
  });

  load();
  // Catch up now and then (an event stream that reconnected may have
  // missed some progress).
  setInterval(() => { if (!document.hidden) load(); }, 10000);
})();
