package group

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/ternmesh/tern/bundle"
	"github.com/ternmesh/tern/chat"
	"github.com/ternmesh/tern/crypto"
	"github.com/ternmesh/tern/message"
)

// maxPending bounds the texts held for an epoch (or a group) this node has
// no key for yet; past it such texts are refused (and counted) rather than
// filling the disk.
const maxPending = 512

// Receive takes a group packet that arrived over a pairwise session
// (chat.Handler). It is idempotent and returns once what it keeps is on disk.
func (m *Manager) Receive(in chat.Incoming) error {
	if in.Clear {
		return chat.Reject("group-clear", fmt.Errorf("group packet from %s came unencrypted: groups travel only end-to-end encrypted", in.From.Short()))
	}
	p, err := Decode(in.Message.Data)
	if err != nil {
		reason := "malformed"
		if errors.Is(err, ErrForged) {
			reason = "forged"
		}
		return chat.Reject(reason, fmt.Errorf("group packet from %s: %w", in.From.Short(), err))
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	switch p.Kind {
	case KindUpdate:
		return m.onUpdate(in.From, p.Membership)
	case KindRemoved:
		return m.onRemoved(in.From, p.Removal)
	case KindText:
		held, err := m.onText(in, p)
		if held {
			return m.hold(in, p)
		}
		return err
	case KindAck:
		return m.onAck(in.From, p)
	}
	return chat.Reject("malformed", fmt.Errorf("group packet kind %s", p.Kind))
}

// onUpdate applies a membership signed by the owner (checked by Decode
// against the key it names; here against the group's owner).
func (m *Manager) onUpdate(from crypto.Address, mem *Membership) error {
	s, err := m.loadState(mem.Group)
	if err != nil {
		return err
	}
	owner := mem.Owner()
	names := m.contactNames()
	var notices []string
	if s == nil {
		if from != owner {
			return chat.Reject("forged", fmt.Errorf("invitation to group %s came from %s, not from the owner it names (%s)", mem.Group, from.Short(), owner.Short()))
		}
		if !mem.Has(m.self) {
			return chat.Reject("not-a-member", fmt.Errorf("membership of group %s from %s does not list this node", mem.Group, from.Short()))
		}
		s = &state{ID: mem.Group, Created: m.cfg.Now().UnixMilli()}
		tmp := &state{Members: toStates(mem.Members)}
		var others []string
		for _, x := range mem.Members {
			if x.Address != m.self && x.Address != owner {
				others = append(others, m.nameIn(tmp, x.Address, names))
			}
		}
		text := fmt.Sprintf("%s added you to the group %q", m.nameIn(tmp, owner, names), mem.Name)
		if len(others) > 0 {
			text += " with " + joinNames(others)
		}
		notices = append(notices, text)
	} else {
		if s.owner() != owner {
			return chat.Reject("forged", fmt.Errorf("update of group %q is signed by %s, who is not its owner (%s): refused", s.Name, owner.Short(), s.owner().Short()))
		}
		if mem.Epoch <= s.Epoch || s.Removed != 0 && mem.Epoch < s.Removed {
			if mem.Epoch == s.Epoch {
				return nil // the same update again
			}
			return chat.Reject("stale-membership", fmt.Errorf("update of group %q for epoch %d, older than the epoch %d held here: refused", s.Name, mem.Epoch, max(s.Epoch, s.Removed)))
		}
		ownerName := m.nameIn(s, owner, names)
		newSt := &state{Members: toStates(mem.Members)}
		for _, x := range mem.Members {
			if _, ok := s.member(x.Address); !ok && x.Address != m.self {
				notices = append(notices, fmt.Sprintf("%s added %s", ownerName, m.nameIn(newSt, x.Address, names)))
			}
		}
		for _, x := range s.Members {
			if !mem.Has(x.Address) && x.Address != m.self {
				notices = append(notices, fmt.Sprintf("%s removed %s", ownerName, m.nameIn(s, x.Address, names)))
			}
		}
		if s.Removed != 0 && mem.Has(m.self) {
			notices = append(notices, fmt.Sprintf("%s added you back to the group", ownerName))
		}
		if mem.Name != s.Name {
			notices = append(notices, fmt.Sprintf("%s renamed the group to %q", ownerName, mem.Name))
		}
	}
	now := m.cfg.Now().UnixMilli()
	s.apply(mem, now)
	if !mem.Has(m.self) {
		// An update that leaves this node out is a removal: keep no key of it.
		s.Keys = s.Keys[:len(s.Keys)-1]
		s.Removed = mem.Epoch
		notices = append(notices, fmt.Sprintf("%s removed you from the group. You no longer receive its messages.", m.nameIn(s, owner, names)))
	}
	if err := m.saveNotices(s, s.Epoch, notices, now); err != nil {
		return err
	}
	if err := m.saveState(s); err != nil {
		return err
	}
	m.publishGroup(s)
	m.log.Info("group membership updated", "group", s.ID.String(), "epoch", s.Epoch, "members", len(s.Members))
	m.retryPending(s.ID)
	return nil
}

func toStates(ms []Member) []memberState {
	out := make([]memberState, len(ms))
	for i, x := range ms {
		out[i] = memberState{Address: x.Address, Name: x.Name, Card: x.Card}
	}
	return out
}

// onRemoved applies the owner's notice that this node was removed.
func (m *Manager) onRemoved(from crypto.Address, r *Removal) error {
	s, err := m.loadState(r.Group)
	if err != nil {
		return err
	}
	switch {
	case s == nil:
		return chat.Reject("unknown-group", fmt.Errorf("removal from group %s, which this node is not in", r.Group))
	case s.owner() != r.Owner():
		return chat.Reject("forged", fmt.Errorf("removal from group %q is signed by %s, who is not its owner (%s): refused", s.Name, r.Owner().Short(), s.owner().Short()))
	case r.Removed != m.self:
		return chat.Reject("not-for-us", fmt.Errorf("removal notice of group %q names %s, not this node", s.Name, r.Removed.Short()))
	case r.Epoch <= s.Epoch || s.Removed != 0:
		return nil // superseded (added back since), or already applied
	}
	now := m.cfg.Now().UnixMilli()
	s.Removed, s.Updated = r.Epoch, now
	note := fmt.Sprintf("%s removed you from the group. You no longer receive its messages.", m.nameIn(s, s.owner(), m.contactNames()))
	if err := m.saveNotices(s, r.Epoch, []string{note}, now); err != nil {
		return err
	}
	if err := m.saveState(s); err != nil {
		return err
	}
	m.publishGroup(s)
	m.log.Info("removed from group", "group", s.ID.String(), "by", s.owner().Short())
	m.retryPending(s.ID) // texts waiting for epochs this node will never have
	return nil
}

// onText opens and stores a group text. held is true when it cannot be
// judged yet (an unknown group, or an epoch newer than the one held): the
// caller keeps it until an update arrives.
func (m *Manager) onText(in chat.Incoming, p *Packet) (held bool, err error) {
	s, err := m.loadState(p.Group)
	if err != nil {
		return false, err
	}
	if s == nil {
		return true, nil
	}
	if s.Removed != 0 && p.Epoch >= s.Removed {
		return false, chat.Reject("group-removed", fmt.Errorf("text of group %q epoch %d from %s: this node was removed at epoch %d and cannot read it", s.Name, p.Epoch, in.From.Short(), s.Removed))
	}
	if p.Epoch > s.Epoch {
		return true, nil
	}
	key, ok := s.key(p.Epoch)
	if !ok {
		return false, chat.Reject("group-no-key", fmt.Errorf("text of group %q epoch %d from %s: this node holds no key for that epoch (current %d)", s.Name, p.Epoch, in.From.Short(), s.Epoch))
	}
	sender, sent, text, err := OpenText(p, key)
	if err != nil {
		reason := "malformed"
		if errors.Is(err, ErrForged) {
			reason = "forged"
		}
		return false, chat.Reject(reason, fmt.Errorf("text of group %q from %s: %w", s.Name, in.From.Short(), err))
	}
	if sender != in.From {
		return false, chat.Reject("forged", fmt.Errorf("text of group %q names %s as its author but came over the session of %s", s.Name, sender.Short(), in.From.Short()))
	}
	author, ok := s.member(sender)
	if !ok || sender == m.self {
		return false, chat.Reject("not-a-member", fmt.Errorf("text of group %q from %s, who is not a member", s.Name, sender.Short()))
	}
	id := p.MsgID()
	if _, ok := m.records.Load(id[:]); !ok {
		r := chat.Record{
			ID: fmt.Sprintf("%x", id), Peer: s.ID.String(), PeerName: s.Name, Group: true, Incoming: true,
			From: sender.String(), FromName: m.nameIn(s, sender, m.contactNames()), Text: text, Sent: sent,
			Received: m.cfg.Now().UnixMilli(), State: chat.StateReceived, Path: in.Path,
		}
		if err := m.records.Save(s.ID, r); err != nil {
			return false, fmt.Errorf("storing a text of group %q: %w", s.Name, err)
		}
		m.cfg.Chat.Publish(chat.Event{Type: "message", Message: r})
	}
	// An ack on every copy: the first may have been lost.
	m.sendAck(author, s.ID, id, AckDelivered)
	return false, nil
}

func (m *Manager) sendAck(to memberState, g ID, id [16]byte, state uint8) {
	data, err := EncodeAck(g, id, state)
	if err == nil {
		_, err = m.sendPacket(to, data)
	}
	if err != nil {
		m.log.Warn("cannot send group ack", "to", to.Address.Short(), "state", state, "err", err)
	}
}

// onAck moves a member's state of one of this node's group texts forward.
func (m *Manager) onAck(from crypto.Address, p *Packet) error {
	rec, ok := m.records.Load(p.Msg[:])
	if !ok || rec.Incoming || !rec.Group || rec.Peer != p.Group.String() {
		return nil // not a text of ours (or long gone): nothing to update
	}
	st := chat.StateDelivered
	if p.State == AckRead {
		st = chat.StateRead
	}
	return m.advance(p.Group, rec, from, st, "", "")
}

// advance moves member's state of rec forward (never back) and announces it.
func (m *Manager) advance(g ID, rec chat.Record, member crypto.Address, st, via, path string) error {
	cur, ok := rec.Members[member.String()]
	if !ok || chat.Rank(st) <= chat.Rank(cur) {
		return nil
	}
	rec.Members[member.String()] = st
	rec.State = aggregate(rec.Members)
	if via != "" && rec.Via == "" {
		rec.Via, rec.Path = via, path
	}
	if err := m.records.Save(g, rec); err != nil {
		return err
	}
	m.cfg.Chat.Publish(chat.Event{Type: "status", Message: rec})
	return nil
}

// OnRouterEvent follows custody of the fan-out copies of this node's group
// texts: id is the bundle a neighbour took, via the neighbour, medium the
// link's (router.Event). It does not block.
func (m *Manager) OnRouterEvent(id bundle.ID, via bundle.Addr, medium string) {
	go func() {
		m.mu.Lock()
		defer m.mu.Unlock()
		v, err := m.copies.Get(id[:])
		if err != nil || len(v) != 32 {
			return
		}
		rec, ok := m.records.Load(v[:16])
		if !ok {
			return
		}
		g, err := ParseID(rec.Peer)
		if err != nil {
			return
		}
		if err := m.advance(g, rec, crypto.Address(v[16:]), chat.StateForwarded, crypto.Address(via).String(), medium); err != nil {
			m.log.Warn("saving a group message's state failed", "message", rec.ID, "err", err)
		}
		m.copies.Delete(id[:])
	}()
}

// MarkRead records that the user has seen incoming texts ids of group and
// answers each with a read ack to its author. It returns how many were
// newly marked.
func (m *Manager) MarkRead(group string, ids []string) (int, error) {
	if len(ids) > chat.MaxReadIDs {
		return 0, fmt.Errorf("%d message IDs in one call: mark at most %d at a time", len(ids), chat.MaxReadIDs)
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	s, err := m.resolve(group)
	if err != nil {
		return 0, err
	}
	n := 0
	for _, id := range ids {
		raw, err := ParseID(id)
		if err != nil {
			return n, fmt.Errorf("message id %q is not 32 hex characters", id)
		}
		r, ok := m.records.Load(raw[:])
		if !ok || !r.Incoming || r.Peer != s.ID.String() {
			return n, fmt.Errorf("no message %s in group %q", id, s.Name)
		}
		if r.State != chat.StateReceived || r.Kind != "" {
			continue
		}
		r.State = chat.StateRead
		if err := m.records.Save(s.ID, r); err != nil {
			return n, err
		}
		n++
		m.cfg.Chat.Publish(chat.Event{Type: "status", Message: r})
		author, err := crypto.ParseAddress(r.From)
		if err != nil {
			continue
		}
		x, ok := s.member(author)
		if !ok {
			x = memberState{Address: author}
		}
		m.sendAck(x, s.ID, [16]byte(raw), AckRead)
	}
	return n, nil
}

// ---- texts waiting for their epoch ------------------------------------------

type pendingText struct {
	From string `json:"from"`
	Data []byte `json:"data"`
	Path string `json:"path,omitempty"`
}

// hold keeps a text this node cannot judge yet, until an update arrives.
func (m *Manager) hold(in chat.Incoming, p *Packet) error {
	// Texts wait at most as long as a bundle lives; older ones (for a
	// group whose invitation never came) are dropped here.
	n := 0
	var stale [][]byte
	oldest := uint64(m.cfg.Now().Add(-chat.DefaultLifetime).UnixMilli())
	m.pending.ForEach(func(k, _ []byte) error {
		if len(k) >= 24 && binary.BigEndian.Uint64(k[16:24]) < oldest {
			stale = append(stale, k)
		} else {
			n++
		}
		return nil
	})
	for _, k := range stale {
		m.pending.Delete(k)
	}
	if len(stale) > 0 {
		m.log.Warn("dropped group texts whose key never came", "count", len(stale))
	}
	if n >= maxPending {
		return chat.Reject("group-pending-full", fmt.Errorf("text of group %s epoch %d from %s: %d texts already wait for group keys that have not come", p.Group, p.Epoch, in.From.Short(), n))
	}
	k := append(p.Group[:], binary.BigEndian.AppendUint64(nil, uint64(m.cfg.Now().UnixMilli()))...)
	k = append(k, in.Bundle.ID[:]...)
	v, _ := json.Marshal(pendingText{From: in.From.String(), Data: in.Message.Data, Path: in.Path})
	if err := m.pending.Put(k, v); err != nil {
		return err
	}
	m.log.Info("group text waits for its epoch's key", "group", p.Group.String(), "epoch", p.Epoch, "from", in.From.Short())
	return nil
}

// retryPending judges again the texts held for group g. Called with m.mu held.
func (m *Manager) retryPending(g ID) {
	type entry struct {
		k []byte
		t pendingText
	}
	var es []entry
	m.pending.ForEachPrefix(g[:], func(k, v []byte) error {
		var t pendingText
		if json.Unmarshal(v, &t) == nil {
			es = append(es, entry{k, t})
		} else {
			es = append(es, entry{k: k})
		}
		return nil
	})
	for _, e := range es {
		from, err := crypto.ParseAddress(e.t.From)
		p, derr := Decode(e.t.Data)
		if err == nil && derr == nil && p.Kind == KindText {
			in := chat.Incoming{From: from, Message: &message.Message{Type: message.Group, Data: e.t.Data}, Path: e.t.Path}
			held, err := m.onText(in, p)
			if held {
				continue
			}
			if err != nil {
				m.log.Warn("held group text refused", "group", g.String(), "from", from.Short(), "err", err)
			}
		}
		if err := m.pending.Delete(e.k); err != nil {
			m.log.Warn("cannot drop a held group text", "err", err)
		}
	}
}
