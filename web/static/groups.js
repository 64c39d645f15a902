// Tern web UI: group channels. A thin client of /v1/groups (api/groups.go),
// riding on app.js: groups are listed with the contacts and open in the same
// conversation view; this file adds the new-group and members views, the
// group header and the per-member message states. User data goes into the
// page with textContent only.
'use strict';
(() => {
  const T = window.Tern;
  if (!T) return;
  const { api, $, el, S, ext } = T;

  const rank = { queued: 1, forwarded: 2, delivered: 3, read: 4 };
  const stateName = { queued: 'waiting to send', forwarded: 'sent', delivered: 'delivered', read: 'read' };

  async function refresh() {
    try {
      const gs = (await api('GET', '/v1/groups')) || [];
      S.groups = new Map(gs.map((g) => [g.id, g]));
      T.renderContacts();
      if (S.open && S.groups.has(S.open)) {
        if (S.view === 'chat') paintHeader(S.open);
        if (S.view === 'group') renderGroup(S.open);
      }
    } catch (e) { /* the banner says why */ }
  }

  const memberName = (g, addr) => {
    const m = g && (g.members || []).find((x) => x.address === addr);
    return m ? (m.me ? 'you' : m.name) : T.nameOf(addr);
  };

  // The conversation header and composer for a group (or back to normal).
  function paintHeader(addr) {
    const g = S.groups.get(addr);
    $('#chat-members').hidden = !g;
    const ta = $('#composer-text');
    const removed = !!(g && g.removed);
    ta.disabled = removed;
    $('#composer-send').disabled = removed;
    ta.placeholder = removed ? 'You were removed from this group' : 'Write a message';
    // Files go to every member; calls are 1:1 only, so no Call button here.
    const attach = $('#composer-attach');
    if (attach) {
      attach.disabled = removed;
      attach.title = g ? 'Send a file to everyone in the group' : 'Send a file';
    }
    const call = $('#chat-call');
    if (call) call.hidden = !!g;
    if (!g) return;
    $('#chat-title').textContent = g.name;
    const names = (g.members || []).map((m) => (m.me ? 'You' : m.name));
    $('#chat-sub').textContent = removed
      ? `${g.owner_name} removed you from this group`
      : `${names.length} members: ${names.join(', ')}`;
  }

  // An outgoing group message's state, from each recipient's.
  function groupStatus(r) {
    const g = S.groups.get(r.peer);
    const ms = Object.entries(r.members || {});
    const n = ms.length;
    const atLeast = (st) => ms.filter(([, s]) => (rank[s] || 0) >= rank[st]).length;
    const title = ms.map(([a, s]) => `${memberName(g, a)}: ${stateName[s] || s}`).join('\n');
    const readers = ms.filter(([, s]) => s === 'read').map(([a]) => memberName(g, a));
    const d = atLeast('delivered');
    const partial = d && d < n ? ` \u00b7 delivered to ${d} of ${n}` : '';
    switch (r.state) {
      case 'read':
        return { icon: '\u2713\u2713', text: n > 1 ? 'Read by everyone' : 'Read', title };
      case 'delivered':
        return { icon: '\u2713\u2713', text: (n > 1 ? 'Delivered to everyone' : 'Delivered') + (readers.length ? ' \u00b7 read by ' + readers.join(', ') : ''), title };
      case 'forwarded':
        return { icon: '\u2713', text: 'Sent' + T.via(r) + partial, title };
    }
    return { icon: '\u25F7', text: 'Waiting to send' + partial, title };
  }

  // ---- new group ------------------------------------------------------------
  $('#nav-newgroup').addEventListener('click', () => {
    T.showView('newgroup');
    $('#nav-newgroup').setAttribute('aria-current', 'page');
    const list = $('#newgroup-members');
    list.replaceChildren(...S.contacts.map((c) => {
      const li = el('li');
      const label = el('label', 'pick-item');
      const box = el('input');
      box.type = 'checkbox';
      box.value = c.address;
      box.dataset.name = c.name;
      const av = el('span', 'avatar small-avatar');
      av.setAttribute('aria-hidden', 'true');
      T.paintAvatar(av, c.name, c.address);
      label.append(box, av, el('span', '', c.name));
      li.append(label);
      return li;
    }));
    $('#newgroup-none').hidden = S.contacts.length > 0;
    $('.error', $('#newgroup-form')).textContent = '';
    $('#newgroup-name').focus();
  });

  $('#newgroup-form').addEventListener('submit', async (ev) => {
    ev.preventDefault();
    const err = $('.error', ev.target);
    err.textContent = '';
    const members = Array.from(document.querySelectorAll('#newgroup-members input:checked')).map((b) => b.value);
    try {
      const g = await api('POST', '/v1/groups', { name: $('#newgroup-name').value.trim(), members });
      $('#newgroup-name').value = '';
      S.groups.set(g.id, g);
      if (g.note) T.banner('Group created, but ' + g.note);
      T.openChat(g.id);
    } catch (e) { err.textContent = e.message; }
  });

  // ---- members ----------------------------------------------------------------
  $('#chat-members').addEventListener('click', () => {
    const id = S.open;
    T.showView('group');
    S.open = id;
    renderGroup(id);
  });

  function renderGroup(id) {
    const g = S.groups.get(id);
    if (!g) return;
    $('#group-title').textContent = g.name;
    T.paintAvatar($('#group-avatar'), g.name, g.id);
    $('#group-about').textContent = g.is_owner
      ? `You created this group. ${g.members.length} members.`
      : `Created by ${g.owner_name}. ${g.members.length} members.`;
    const removed = $('#group-removed');
    removed.hidden = !g.removed;
    removed.textContent = g.removed ? `${g.owner_name} removed you from this group. You keep what was said before, but you receive nothing new and cannot write to it.` : '';
    const canEdit = g.is_owner && !g.removed;
    $('#group-members').replaceChildren(...g.members.map((m) => {
      const li = el('li', 'member');
      li.dataset.name = m.name;
      li.dataset.address = m.address;
      const av = el('span', 'avatar');
      av.setAttribute('aria-hidden', 'true');
      T.paintAvatar(av, m.name, m.address);
      const body = el('span', 'grow');
      body.append(el('div', 'member-name', m.me ? m.name + ' (you)' : m.name));
      body.append(el('div', 'muted small mono', m.address.slice(0, 16)));
      li.append(av, body);
      if (m.owner) li.append(el('span', 'badge owner', 'Owner'));
      if (canEdit && !m.me) {
        const rm = el('button', 'remove', 'Remove');
        rm.type = 'button';
        rm.addEventListener('click', () => removeMember(g, m, rm));
        li.append(rm);
      }
      return li;
    }));
    const form = $('#group-add');
    const candidates = S.contacts.filter((c) => !g.members.some((m) => m.address === c.address));
    form.hidden = !canEdit || candidates.length === 0;
    $('#group-add-select').replaceChildren(...candidates.map((c) => {
      const o = el('option', '', c.name);
      o.value = c.address;
      return o;
    }));
    $('#group-note').textContent = canEdit
      ? 'Adding or removing someone gives the group a new key: a removed member cannot read what is written after.'
      : g.removed ? '' : `Only ${g.owner_name} can add or remove members.`;
  }

  // Two clicks: the first asks, the second removes.
  async function removeMember(g, m, btn) {
    if (!btn.classList.contains('confirm')) {
      btn.classList.add('confirm');
      btn.textContent = `Remove ${m.name}?`;
      setTimeout(() => { if (btn.isConnected) { btn.classList.remove('confirm'); btn.textContent = 'Remove'; } }, 5000);
      return;
    }
    btn.disabled = true;
    try {
      const ng = await api('DELETE', `/v1/groups/${encodeURIComponent(g.id)}/members/${encodeURIComponent(m.address)}`);
      S.groups.set(ng.id, ng);
      if (ng.note) T.banner(ng.note);
      renderGroup(ng.id);
    } catch (e) {
      btn.disabled = false;
      $('.error', $('#group-add')).textContent = e.message;
      T.banner(e.message);
    }
  }

  $('#group-add').addEventListener('submit', async (ev) => {
    ev.preventDefault();
    const err = $('.error', ev.target);
    err.textContent = '';
    const id = S.open;
    try {
      const g = await api('POST', `/v1/groups/${encodeURIComponent(id)}/members`, { member: $('#group-add-select').value });
      S.groups.set(g.id, g);
      if (g.note) T.banner(g.note);
      renderGroup(g.id);
    } catch (e) { err.textContent = e.message; }
  });

  // ---- hooks into app.js --------------------------------------------------------
  ext.refresh = refresh;
  ext.groupStatus = groupStatus;
  ext.chatOpened = paintHeader;
  ext.onEvent = (e) => {
    if (e.type !== 'group') return false;
    refresh();
    return true;
  };
})();
