// Tern web UI: a thin client of the node's local API (the same one the CLI
// uses). No framework, no build step. All user data goes into the page with
// textContent, never as HTML.
'use strict';
(() => {
  const $ = (s, el = document) => el.querySelector(s);
  const $$ = (s, el = document) => Array.from(el.querySelectorAll(s));

  // ---- access token -------------------------------------------------------
  // `tern ui` prints http://127.0.0.1:7338/#token=...: keep the token and
  // take it out of the address bar. The /?token= form sets a cookie instead.
  let token = null;
  {
    const m = location.hash.match(/token=([0-9A-Za-z_-]+)/);
    if (m) {
      token = m[1];
      try { localStorage.setItem('tern.token', token); } catch (e) { /* private mode */ }
      history.replaceState(null, '', location.pathname);
    } else {
      try { token = localStorage.getItem('tern.token'); } catch (e) { token = null; }
    }
  }
  const authHeaders = () => (token ? { Authorization: 'Bearer ' + token } : {});

  class APIError extends Error {
    constructor(status, msg) { super(msg); this.status = status; }
  }

  async function api(method, path, body) {
    const headers = authHeaders();
    if (body !== undefined) headers['Content-Type'] = 'application/json';
    let r;
    try {
      r = await fetch(path, { method, headers, credentials: 'same-origin',
        body: body === undefined ? undefined : JSON.stringify(body) });
    } catch (e) {
      throw new APIError(0, 'Cannot reach your Tern node. Is `tern run` still running?');
    }
    if (r.status === 401) { showLocked(); throw new APIError(401, 'This page is locked: run `tern ui` and open its link.'); }
    const data = await r.json().catch(() => ({}));
    if (!r.ok) throw new APIError(r.status, data.error || r.statusText);
    return data;
  }

  // ---- state --------------------------------------------------------------
  const S = {
    me: null,            // GET /v1/profile
    contacts: [],        // GET /v1/contacts
    history: new Map(),  // peer address -> [Record], oldest first
    notes: new Map(),    // message id -> note from the send answer
    unread: new Map(),   // peer address -> count
    open: null,          // address of the open conversation
    view: 'empty',
    peers: [],
    online: true,
    groups: new Map(),   // group id -> GET /v1/groups entry (filled by groups.js)
  };
  // Hooks other files (groups.js) set; app.js calls them when present.
  const ext = {};
  // Feature scripts (files.js) add to the conversation and follow events.
  const hooks = { render: [], event: [] };

  const short = (a) => (a || '').slice(0, 8);
  function nameOf(addr) {
    if (!addr) return '';
    if (S.groups.has(addr)) return S.groups.get(addr).name;
    const c = S.contacts.find((c) => c.address === addr);
    if (c) return c.name;
    if (S.me && S.me.address === addr) return S.me.name;
    return short(addr);
  }
  const hexOf = (arr) => Array.isArray(arr) ? arr.map((b) => b.toString(16).padStart(2, '0')).join('') : String(arr || '');

  function hue(s) { let h = 0; for (const ch of s || '') h = (h * 31 + ch.charCodeAt(0)) % 360; return h; }
  function paintAvatar(el, name, addr) {
    const parts = (name || '?').trim().split(/\s+/);
    el.textContent = ((parts[0] || '?')[0] + (parts.length > 1 ? parts[parts.length - 1][0] : '')).toUpperCase();
    el.style.backgroundColor = `hsl(${hue(addr || name)} 50% 42%)`;
  }
  function el(tag, cls, text) {
    const e = document.createElement(tag);
    if (cls) e.className = cls;
    if (text !== undefined) e.textContent = text;
    return e;
  }
  const fmtTime = (ms) => ms ? new Date(ms).toLocaleTimeString([], { hour: '2-digit', minute: '2-digit' }) : '';
  function fmtWhen(ms) {
    if (!ms) return '';
    const d = new Date(ms), now = new Date();
    return d.toDateString() === now.toDateString() ? fmtTime(ms) : d.toLocaleDateString([], { month: 'short', day: 'numeric' });
  }
  function fmtBytes(n) {
    if (n < 1000) return n + ' B';
    if (n < 1e6) return (n / 1e3).toFixed(1) + ' kB';
    return (n / 1e6).toFixed(1) + ' MB';
  }
  const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

  // ---- screens ------------------------------------------------------------
  function showOnly(id) {
    for (const s of ['locked', 'onboard', 'app']) $('#' + s).hidden = s !== id;
  }
  function showLocked() { showOnly('locked'); }

  function banner(text) {
    const b = $('#banner');
    b.textContent = text || '';
    b.hidden = !text;
  }

  async function loadQR(img) {
    try {
      const r = await fetch('/v1/card.png', { headers: authHeaders(), credentials: 'same-origin' });
      if (!r.ok) return;
      const url = URL.createObjectURL(await r.blob());
      if (img.dataset.url) URL.revokeObjectURL(img.dataset.url);
      img.dataset.url = url;
      img.src = url;
    } catch (e) { /* the link still works */ }
  }

  async function copyText(text, status) {
    try {
      await navigator.clipboard.writeText(text);
    } catch (e) {
      const ta = document.createElement('textarea');
      ta.value = text; document.body.append(ta); ta.select();
      document.execCommand('copy'); ta.remove();
    }
    status.textContent = 'Copied. Send it to someone you want to chat with.';
  }

  // Onboarding: 1 name, 2 card (share yours, add theirs), 3 chat.
  function onboardStep(step) {
    showOnly('onboard');
    $('#step-name').hidden = step !== 'name';
    $('#step-card').hidden = step !== 'card';
    if (step === 'name') {
      $('#name-input').value = S.me && S.me.name !== 'tern' ? S.me.name : '';
      $('#name-input').focus();
      $('#name-input').select();
    } else {
      $('#my-card').value = S.me.qr_uri;
      loadQR($('#my-qr'));
    }
  }

  $('#name-form').addEventListener('submit', async (ev) => {
    ev.preventDefault();
    $('#name-error').textContent = '';
    try {
      S.me = await api('PUT', '/v1/profile', { name: $('#name-input').value });
      onboardStep('card');
    } catch (e) { $('#name-error').textContent = e.message; }
  });
  $('#copy-card').addEventListener('click', () => copyText($('#my-card').value, $('#copy-done')));
  $('#onboard-done').addEventListener('click', () => showApp());

  // Adding a contact, from onboarding or from the app.
  function wireAddForm(form, uriSel, nameSel, after) {
    form.addEventListener('submit', async (ev) => {
      ev.preventDefault();
      const err = $('.error', form), ok = $('.ok', form);
      err.textContent = ''; ok.textContent = '';
      try {
        const c = await api('POST', '/v1/contacts', { uri: $(uriSel).value.trim(), name: $(nameSel).value.trim() });
        $(uriSel).value = ''; $(nameSel).value = '';
        ok.textContent = `Added ${c.name}. You can write to them now.`;
        await refreshContacts();
        if (after) after(c);
      } catch (e) { err.textContent = e.message; }
    });
  }
  wireAddForm($('#onboard-add'), '#onboard-add-uri', '#onboard-add-name');
  wireAddForm($('#add-form'), '#add-uri', '#add-name', (c) => openChat(c.address));

  // ---- the app ------------------------------------------------------------
  function showApp() {
    showOnly('app');
    paintMe();
    refreshContacts();
    refreshNetSummary();
  }
  function paintMe() {
    $('#me-name').textContent = S.me.name;
    paintAvatar($('#me-avatar'), S.me.name, S.me.address);
  }

  function showView(v) {
    S.view = v;
    for (const x of ['empty', 'chat', 'verify', 'card', 'add', 'network', 'newgroup', 'group']) $('#view-' + x).hidden = x !== v;
    $('#app').classList.toggle('pane-open', v !== 'empty');
    for (const b of $$('.side-actions button')) b.removeAttribute('aria-current');
    const nav = { card: '#nav-card', add: '#nav-add', network: '#nav-network' }[v];
    if (nav) $(nav).setAttribute('aria-current', 'page');
    if (v !== 'chat' && v !== 'verify' && v !== 'group') S.open = null;
    if (v === 'network') refreshNetwork();
    renderContacts();
  }
  for (const b of $$('.back')) b.addEventListener('click', () => (S.open && b.closest('#view-verify, #view-group') ? openChat(S.open) : showView('empty')));
  $('#nav-add').addEventListener('click', () => { showView('add'); $('#add-uri').focus(); });
  $('#nav-network').addEventListener('click', () => showView('network'));
  $('#nav-card').addEventListener('click', () => {
    showView('card');
    $('#card-link').value = S.me.qr_uri;
    $('#rename-input').value = S.me.name;
    $('#card-listen').textContent = (S.me.listen || []).join(', ') || 'nowhere (this node only dials out)';
    loadQR($('#card-qr'));
  });
  $('#card-copy').addEventListener('click', () => copyText($('#card-link').value, $('#view-card .copy-done')));
  $('#rename-form').addEventListener('submit', async (ev) => {
    ev.preventDefault();
    const err = $('.error', ev.target);
    err.textContent = '';
    try {
      S.me = await api('PUT', '/v1/profile', { name: $('#rename-input').value });
      paintMe();
      $('#card-link').value = S.me.qr_uri;
      loadQR($('#card-qr'));
    } catch (e) { err.textContent = e.message; }
  });

  async function refreshContacts() {
    if (ext.refresh) ext.refresh();
    try {
      const [cs, all] = await Promise.all([api('GET', '/v1/contacts'), api('GET', '/v1/messages?limit=1000')]);
      S.contacts = cs || [];
      for (const r of all || []) upsert(r);
      renderContacts();
    } catch (e) { /* shown by the banner */ }
  }

  function lastOf(addr) {
    const h = S.history.get(addr);
    return h && h.length ? h[h.length - 1] : null;
  }

  function renderContacts() {
    const list = $('#contacts');
    const people = S.contacts.map((c) => ({ address: c.address, name: c.name }));
    for (const g of S.groups.values()) people.push({ address: g.id, name: g.name, group: true });
    for (const [peer, h] of S.history) {
      if (h.length && h[0].group) continue; // a group not listed (yet)
      if (!people.some((p) => p.address === peer)) people.push({ address: peer, name: short(peer), stranger: true });
    }
    people.sort((a, b) => ((lastOf(b.address) || {}).received || 0) - ((lastOf(a.address) || {}).received || 0) || a.name.localeCompare(b.name));
    list.replaceChildren(...people.map((p) => {
      const li = el('li');
      const b = el('button', 'contact');
      b.type = 'button';
      b.dataset.address = p.address;
      b.dataset.name = p.name;
      if (p.group) b.dataset.group = '1';
      if (p.address === S.open) b.setAttribute('aria-current', 'true');
      const av = el('span', 'avatar'); av.setAttribute('aria-hidden', 'true');
      paintAvatar(av, p.name, p.address);
      const body = el('span', 'contact-body');
      const top = el('span', 'contact-top');
      top.append(el('span', 'contact-name', p.name + (p.stranger ? ' (not in contacts)' : '')));
      const last = lastOf(p.address);
      top.append(el('span', 'muted small', last ? fmtWhen(last.received) : ''));
      body.append(top);
      const who = !last || last.kind ? '' : !last.incoming ? 'You: ' : last.group ? (last.from_name || short(last.from)) + ': ' : '';
      const prev = el('span', 'contact-preview muted', last ? who + last.text : (p.group ? 'Group' : 'No messages yet'));
      body.append(prev);
      b.append(av, body);
      const n = S.unread.get(p.address) || 0;
      if (n) { const u = el('span', 'unread', String(n)); u.setAttribute('aria-label', n + ' unread'); b.append(u); }
      b.addEventListener('click', () => openChat(p.address));
      li.append(b);
      return li;
    }));
    $('#no-contacts').hidden = people.length > 0;
  }

  // ---- conversation -------------------------------------------------------
  async function openChat(addr) {
    S.open = addr;
    S.unread.delete(addr);
    showView('chat');
    const name = nameOf(addr);
    $('#chat-title').textContent = name;
    $('#chat-sub').textContent = S.contacts.some((c) => c.address === addr) ? 'Encrypted end to end' : 'Not in your contacts: add their card to verify them';
    paintAvatar($('#chat-avatar'), name, addr);
    $('#chat-verify').hidden = S.groups.has(addr);
    $('#composer-clear-wrap').hidden = S.groups.has(addr);
    setClear(false);
    if (ext.chatOpened) ext.chatOpened(addr);
    S.forceScroll = true;
    renderMessages();
    try {
      const recs = await api('GET', '/v1/messages?limit=500&peer=' + encodeURIComponent(addr));
      if (S.open !== addr) return;
      mergeHistory(addr, recs || []);
      S.forceScroll = true;
      renderMessages();
    } catch (e) { banner(e.message); }
    $('#composer-text').focus();
  }

  function mergeHistory(addr, recs) {
    if (!S.history.has(addr)) S.history.set(addr, []);
    for (const r of recs) upsert(r);
  }

  const rank = { queued: 1, forwarded: 2, delivered: 3, read: 4 };
  function upsert(rec) {
    const h = S.history.get(rec.peer) || [];
    const i = h.findIndex((r) => r.id === rec.id);
    if (i < 0) { h.push(rec); h.sort((a, b) => a.received - b.received); }
    else if ((rank[rec.state] || 0) >= (rank[h[i].state] || 0)) h[i] = Object.assign({}, h[i], rec);
    S.history.set(rec.peer, h);
  }

  // How a medium is named: "sent via LAN".
  const pathName = { internet: 'internet', lan: 'LAN', lora: 'LoRa', 'packet-radio': 'packet radio' };
  const via = (r) => (r.path ? ' via ' + (pathName[r.path] || r.path) : '');

  function statusOf(r) {
    if (r.group && r.members) return ext.groupStatus ? ext.groupStatus(r) : { icon: '', text: r.state };
    const sentVia = r.path ? ' \u00b7 sent' + via(r) : '';
    if (r.state === 'read') return { icon: '\u2713\u2713', text: 'Read' + sentVia };
    if (r.state === 'delivered') return { icon: '\u2713\u2713', text: 'Delivered' + sentVia };
    if (r.state === 'forwarded') {
      if (r.path || (r.via && r.via === r.peer)) return { icon: '\u2713', text: 'Sent' + via(r) + (r.via && r.via !== r.peer ? ' to ' + nameOf(r.via) : '') };
      return { icon: '\u2713', text: 'Sent via ' + nameOf(r.via) };
    }
    return { icon: '\u25F7', text: 'Waiting to send' };
  }

  function bubble(r) {
    if (r.kind === 'notice') {
      const n = el('li', 'notice');
      n.dataset.id = r.id;
      n.append(el('span', '', r.text));
      return n;
    }
    const li = el('li', 'msg ' + (r.incoming ? 'in' : 'out'));
    li.dataset.id = r.id;
    li.dataset.state = r.state;
    li.dataset.time = String(r.received);
    const b = el('div', 'bubble');
    if (r.incoming && r.group) {
      const from = el('span', 'from', r.from_name || short(r.from));
      from.style.color = `hsl(${hue(r.from)} 55% 40%)`;
      b.append(from);
    }
    b.append(el('p', 'text', r.text));
    const meta = el('div', 'meta');
    if (r.clear) {
      const c = el('span', 'badge warn', 'Not encrypted');
      c.title = 'Sent signed but unencrypted (allowed over amateur radio): every relay could read it.';
      meta.append(c);
    }
    meta.append(el('time', '', fmtTime(r.incoming ? (r.sent || r.received) : r.received)));
    if (r.incoming && r.path) meta.append(el('span', 'path', via(r).trim()));
    if (!r.incoming) {
      const st = statusOf(r);
      const s = el('span', 'status', (st.icon ? st.icon + ' ' : '') + st.text);
      s.dataset.state = r.state;
      if (st.title) s.title = st.title;
      meta.append(s);
    }
    b.append(meta);
    li.append(b);
    if (!r.incoming && r.state === 'queued') {
      // The router's note says why a message waits (an amateur-radio-only
      // path); with no link up at all, say that it is kept and will go.
      let note = S.notes.get(r.id);
      if (!note && !S.peers.some((p) => p.state === 'up')) note = 'No connection right now. The message is saved here and goes out by itself as soon as a path appears.';
      if (note) li.append(el('p', 'note', note));
    }
    return li;
  }

  function renderMessages() {
    const list = $('#messages');
    const atEnd = list.scrollHeight - list.scrollTop - list.clientHeight < 60;
    const recs = S.history.get(S.open) || [];
    list.replaceChildren(...recs.map(bubble));
    if (!recs.length) list.append(el('li', 'muted empty', 'No messages yet. Say hello!'));
    // Other features (calls, files) add their items to the conversation here.
    document.dispatchEvent(new CustomEvent('tern:messages', { detail: { peer: S.open, list } }));
    for (const h of hooks.render) h(list, S.open);
    if (atEnd || S.forceScroll) list.scrollTop = list.scrollHeight;
    S.forceScroll = false;
    markSeen();
  }

  // Read receipts: incoming messages shown in the open conversation while
  // the page is visible are reported read, once.
  const reporting = new Set();
  function markSeen() {
    if (!S.open || S.view !== 'chat' || document.hidden) return;
    const ids = (S.history.get(S.open) || [])
      .filter((r) => r.incoming && !r.kind && r.state === 'received' && !reporting.has(r.id)).map((r) => r.id);
    if (!ids.length) return;
    for (const id of ids) reporting.add(id);
    api('POST', '/v1/messages/read', { peer: S.open, ids }).catch(() => { for (const id of ids) reporting.delete(id); });
  }
  document.addEventListener('visibilitychange', markSeen);

  // Sending signed but unencrypted (over-air-clear), for amateur radio.
  function setClear(on) {
    $('#composer-clear').checked = on;
    $('#clear-warning').hidden = !on;
    $('#composer').classList.toggle('clear', on);
  }
  $('#composer-clear').addEventListener('change', (ev) => setClear(ev.target.checked));

  $('#composer').addEventListener('submit', async (ev) => {
    ev.preventDefault();
    const ta = $('#composer-text');
    const text = ta.value;
    if (!text.trim() || !S.open) return;
    ta.value = '';
    try {
      const clear = $('#composer-clear').checked && !S.groups.has(S.open);
      const rec = S.groups.has(S.open)
        ? await api('POST', '/v1/groups/' + encodeURIComponent(S.open) + '/messages', { text })
        : await api('POST', '/v1/messages', clear ? { to: S.open, text, over_air_clear: true } : { to: S.open, text });
      if (rec.note) S.notes.set(rec.id, rec.note);
      upsert(rec);
      S.forceScroll = true;
      renderMessages();
      renderContacts();
    } catch (e) {
      ta.value = text;
      banner('Not sent: ' + e.message);
    }
  });
  $('#composer-text').addEventListener('keydown', (ev) => {
    if (ev.key === 'Enter' && !ev.shiftKey && !ev.isComposing) {
      ev.preventDefault();
      $('#composer').requestSubmit();
    }
  });
  $('#chat-verify').addEventListener('click', async () => {
    const addr = S.open;
    showView('verify');
    S.open = addr;
    const name = nameOf(addr);
    $('#verify-name').textContent = name;
    $('.verify-who').textContent = name;
    $('#verify-addr').textContent = addr;
    const sas = $('#verify-sas');
    sas.textContent = '';
    try {
      const r = await api('GET', '/v1/sas?contact=' + encodeURIComponent(addr));
      sas.replaceChildren(...r.sas.split(' ').map((g) => el('span', '', g)));
    } catch (e) { sas.textContent = e.message; }
  });

  // ---- live events --------------------------------------------------------
  function onEvent(e) {
    for (const h of hooks.event) h(e);
    if (ext.onEvent && ext.onEvent(e)) return;
    const r = e.message;
    if (!r || !r.peer) return;
    upsert(r);
    if (e.type === 'message' && r.peer !== S.open) S.unread.set(r.peer, (S.unread.get(r.peer) || 0) + 1);
    if (r.peer === S.open && S.view === 'chat') renderMessages();
    renderContacts();
    refreshNetSummary();
  }

  async function events() {
    let delay = 500;
    for (;;) {
      try {
        const r = await fetch('/v1/events', { headers: authHeaders(), credentials: 'same-origin' });
        if (r.status === 401) { showLocked(); return; }
        if (!r.ok || !r.body) throw new Error('events: ' + r.status);
        banner('');
        delay = 500;
        // Catch up on whatever happened while the stream was down.
        refreshContacts();
        if (S.open) openChatQuiet(S.open);
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
            if (line.trim()) { try { onEvent(JSON.parse(line)); } catch (err) { /* skip a bad line */ } }
          }
        }
      } catch (err) { /* retry below */ }
      banner('Lost contact with your Tern node. Reconnecting\u2026');
      await sleep(delay);
      delay = Math.min(delay * 2, 5000);
    }
  }
  async function openChatQuiet(addr) {
    try {
      const recs = await api('GET', '/v1/messages?limit=500&peer=' + encodeURIComponent(addr));
      mergeHistory(addr, recs || []);
      if (S.open === addr && S.view === 'chat') renderMessages();
    } catch (e) { /* next reconnect */ }
  }

  // ---- network ------------------------------------------------------------
  async function refreshNetSummary() {
    try {
      S.peers = (await api('GET', '/v1/peers')) || [];
      paintNetSummary();
    } catch (e) { /* banner says it */ }
  }
  function paintNetSummary() {
    const up = S.peers.filter((p) => p.state === 'up').length;
    $('#net-summary').textContent = up ? `Connected to ${up} neighbour${up > 1 ? 's' : ''}` : 'No links up: messages wait until a path appears';
  }

  async function refreshNetwork() {
    try {
      const [peers, status, held] = await Promise.all([api('GET', '/v1/peers'), api('GET', '/v1/status'), api('GET', '/v1/bundles?limit=100')]);
      S.peers = peers || [];
      paintNetSummary();
      renderLinks(S.peers);
      renderCounters(status);
      renderHeld(held || []);
    } catch (e) { /* banner */ }
  }

  function renderLinks(peers) {
    const rows = peers.map((p) => {
      const tr = el('tr');
      tr.dataset.state = p.state;
      tr.dataset.neighbour = p.neighbour || '';
      const who = el('td');
      who.append(el('div', '', p.neighbour ? nameOf(p.neighbour) : (p.url || '')));
      who.append(el('div', 'muted small', p.url || p.remote || 'incoming link'));
      const st = el('td');
      const badge = el('span', 'state', p.state);
      badge.dataset.state = p.state;
      st.append(badge);
      if (p.error && p.state !== 'up') st.append(el('div', 'muted small', p.error));
      if (p.silent && p.silent.length) st.append(el('div', 'muted small silent', 'No answer over ' + p.silent.join(', ') + ': messages take another link until it answers'));
      tr.append(who, st,
        el('td', '', p.state === 'up' && p.rtt_ms ? p.rtt_ms.toFixed(1) + ' ms' : '\u2013'),
        el('td', '', fmtBytes(p.bytes_in || 0) + ' / ' + fmtBytes(p.bytes_out || 0)),
        el('td', '', String((p.queued || 0) + (p.in_flight || 0))));
      return tr;
    });
    $('#links').replaceChildren(...rows);
    $('#no-links').hidden = rows.length > 0;
  }

  function renderCounters(s) {
    const t = (s.metrics && s.metrics.total) || {};
    const items = [
      ['Received', t.in], ['Sent', t.out], ['Delivered here', t.delivered], ['Stored', t.stored],
      ['Duplicates', t.duplicate], ['Rejected', t.rejected], ['Expired', t.expired],
      ['Held now', s.metrics ? s.metrics.stored_now : 0], ['Store size', fmtBytes((s.metrics && s.metrics.stored_bytes) || 0)],
      ['Known routes', (s.routes || []).length],
    ];
    $('#counters').replaceChildren(...items.flatMap(([k, v]) => {
      const d = el('div'); d.append(el('dt', '', k), el('dd', '', String(v === undefined ? 0 : v)));
      return [d];
    }));
  }

  function renderHeld(held) {
    const rows = held.map((b) => {
      const tr = el('tr');
      tr.append(el('td', 'mono', short(b.id)), el('td', '', nameOf(b.dest)),
        el('td', '', b.next_hop ? nameOf(b.next_hop) : 'no route yet'),
        el('td', '', fmtBytes(b.size)), el('td', '', fmtWhen(Date.parse(b.received))));
      return tr;
    });
    if (!rows.length) {
      const tr = el('tr'); const td = el('td', 'muted', 'Nothing waiting.'); td.colSpan = 5; tr.append(td); rows.push(tr);
    }
    $('#held').replaceChildren(...rows);
  }

  $('#link-form').addEventListener('submit', async (ev) => {
    ev.preventDefault();
    const err = $('.error', ev.target);
    err.textContent = '';
    try {
      await api('POST', '/v1/peers', { url: $('#link-url').value.trim() });
      $('#link-url').value = '';
      refreshNetwork();
    } catch (e) { err.textContent = e.message; }
  });

  setInterval(() => {
    if ($('#app').hidden || document.hidden) return;
    if (S.view === 'network') refreshNetwork();
    refreshNetSummary();
  }, 2000);

  // The bridge for the feature scripts loaded after this one (call.js, files.js).
  window.tern = {
    api, authHeaders, el, fmtBytes, fmtTime, banner, nameOf, state: S, hooks, renderMessages, token: () => token,
    currentChat: () => (S.view === 'chat' ? S.open : null),
    rerender: () => { if (S.view === 'chat') renderMessages(); },
  };

  // ---- start --------------------------------------------------------------
  async function start() {
    for (let delay = 500; ; delay = Math.min(delay * 2, 5000)) {
      try {
        S.me = await api('GET', '/v1/profile');
        break;
      } catch (e) {
        if (e.status === 401) return;
        banner(e.message);
        await sleep(delay);
      }
    }
    banner('');
    if (!S.me.named) onboardStep('name');
    else showApp();
    events();
  }
  window.Tern = { api, $, $$, el, S, ext, nameOf, short, paintAvatar, openChat, showView, renderContacts, renderMessages, banner, fmtWhen, via };
  start();
})();
