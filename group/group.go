// Package group is Tern's group channels: a named group with an owner, a
// membership list the owner signs, and a key per epoch held by the members.
//
// The owner creates a group (a random 16-byte ID, epoch 1, a random key),
// and every change of membership starts a new epoch with a new key: the
// owner signs the new list (with its Ed25519 identity key) and sends it,
// with the key, to each member, sealed 1:1 over their pairwise session.
// A removed member gets a signed notice instead, and no key, so it cannot
// read what is written after its removal; it sees that it was removed.
//
// A member writes to the group by encrypting the text once with the current
// epoch's key (XChaCha20-Poly1305, the author's address inside) and sending
// a copy to every other member, each sealed 1:1 (fan-out). A member accepts
// a text only from a current member, only over that member's own session,
// and only of an epoch whose key it holds; a text of a newer epoch than it
// knows waits (durably) for the update that brings the key. Updates are
// accepted only when signed by the group's owner, with an epoch greater
// than the one held. Recipients answer each text with a delivery ack and,
// once it is displayed, a read ack; the author's record shows each
// member's state.
//
// The wire format is in FORMAT.md. Messages are kept as chat.Records (in
// this package's own buckets) and announced on the chat event stream, so
// the CLI and the web UI show group channels like conversations.
package group

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/ternmesh/tern/bundle"
	"github.com/ternmesh/tern/chat"
	"github.com/ternmesh/tern/crypto"
	"github.com/ternmesh/tern/message"
	"github.com/ternmesh/tern/store"
)

// Config wires the group application.
type Config struct {
	Identity *crypto.Identity
	// Card returns this node's current contact card (put in membership
	// lists so members can reach each other).
	Card   func() *crypto.Card
	Chat   *chat.App
	Store  *store.Store
	Now    func() time.Time
	Rand   io.Reader
	Logger *slog.Logger
	// OnChange, if set, is called (with the group's state locked: it
	// must not call back into the Manager synchronously) after a group's
	// membership or this node's standing in it changed.
	OnChange func(ID)
}

// Manager is the group application of one node. It is a chat.Handler for
// message.Group. Its methods are safe for concurrent use.
type Manager struct {
	cfg     Config
	log     *slog.Logger
	self    crypto.Address
	groups  *store.KV     // ID -> state (JSON)
	copies  *store.KV     // bundle ID of a fan-out copy -> message ID (16) | member (16)
	pending *store.KV     // ID (16) | received ms (8) | bundle ID (16) -> a text waiting for its epoch
	records *chat.Records // the groups' messages, filed under the group ID

	mu sync.Mutex // serialises every change of group state and records
}

// New returns the group application.
func New(cfg Config) *Manager {
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Rand == nil {
		cfg.Rand = rand.Reader
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	return &Manager{
		cfg: cfg, log: cfg.Logger.With("app", "group"), self: cfg.Identity.Address(),
		groups: cfg.Store.Bucket("groups"), copies: cfg.Store.Bucket("group-copies"),
		pending: cfg.Store.Bucket("group-pending"),
		records: chat.NewRecords(cfg.Store, "group-messages", "group-message-index"),
	}
}

// Info is a group as the API shows it.
type Info struct {
	ID        string       `json:"id"`
	Name      string       `json:"name"`
	Owner     string       `json:"owner"`
	OwnerName string       `json:"owner_name"`
	IsOwner   bool         `json:"is_owner"`
	Epoch     uint64       `json:"epoch"`
	Members   []MemberInfo `json:"members"`
	// Removed is true once the owner removed this node: it keeps the
	// history but receives and can read nothing new.
	Removed bool  `json:"removed,omitempty"`
	Created int64 `json:"created"`
	Updated int64 `json:"updated"`
	// Note reports members an update or text could not be queued for.
	Note string `json:"note,omitempty"`
}

// MemberInfo is one member as the API shows it.
type MemberInfo struct {
	Address string `json:"address"`
	Name    string `json:"name"`
	Owner   bool   `json:"owner,omitempty"`
	Me      bool   `json:"me,omitempty"`
	Contact bool   `json:"contact,omitempty"`
}

func (m *Manager) contactNames() map[string]string {
	names := map[string]string{}
	cs, err := m.cfg.Chat.Contacts()
	if err != nil {
		m.log.Warn("cannot read contacts", "err", err)
	}
	for _, c := range cs {
		names[c.Address] = c.Name
	}
	return names
}

func (m *Manager) info(s *state) Info {
	names := m.contactNames()
	owner := s.owner()
	in := Info{ID: s.ID.String(), Name: s.Name, Owner: owner.String(), IsOwner: owner == m.self, Epoch: s.Epoch,
		Removed: s.Removed != 0, Created: s.Created, Updated: s.Updated}
	for _, x := range s.Members {
		mi := MemberInfo{Address: x.Address.String(), Name: m.nameIn(s, x.Address, names), Owner: x.Address == owner, Me: x.Address == m.self}
		_, mi.Contact = names[mi.Address]
		in.Members = append(in.Members, mi)
	}
	in.OwnerName = m.nameIn(s, owner, names)
	return in
}

// nameIn names a: this node's own name, a contact's name, the name the
// owner listed, or the short address.
func (m *Manager) nameIn(s *state, a crypto.Address, names map[string]string) string {
	if a == m.self {
		return m.cfg.Card().Name
	}
	if n := names[a.String()]; n != "" {
		return n
	}
	if x, ok := s.member(a); ok && x.Name != "" {
		return x.Name
	}
	return a.Short()
}

// List returns every group this node is or was in, by name.
func (m *Manager) List() ([]Info, error) {
	ss, err := m.allStates()
	if err != nil {
		return nil, err
	}
	out := make([]Info, 0, len(ss))
	for _, s := range ss {
		out = append(out, m.info(s))
	}
	slices.SortFunc(out, func(a, b Info) int { return strings.Compare(strings.ToLower(a.Name), strings.ToLower(b.Name)) })
	return out, nil
}

// Get finds a group by ID, unique ID prefix (4 characters or more) or
// name (case-insensitive, if unique).
func (m *Manager) Get(group string) (Info, error) {
	s, err := m.resolve(group)
	if err != nil {
		return Info{}, err
	}
	return m.info(s), nil
}

// Is reports whether who names a group here (the API uses it to tell a
// group from a contact).
func (m *Manager) Is(who string) bool {
	_, err := m.resolve(who)
	return err == nil
}

func (m *Manager) resolve(group string) (*state, error) {
	if g, err := ParseID(strings.ToLower(group)); err == nil {
		if s, err := m.loadState(g); err != nil || s != nil {
			return s, err
		}
	}
	ss, err := m.allStates()
	if err != nil {
		return nil, err
	}
	var hits []*state
	for _, s := range ss {
		if strings.EqualFold(s.Name, group) {
			hits = append(hits, s)
		}
	}
	if len(hits) == 0 && len(group) >= 4 {
		for _, s := range ss {
			if strings.HasPrefix(s.ID.String(), strings.ToLower(group)) {
				hits = append(hits, s)
			}
		}
	}
	switch len(hits) {
	case 0:
		return nil, fmt.Errorf("no group %q: list groups with `tern groups`, or create one with `tern group create %s <contact>...`", group, group)
	case 1:
		return hits[0], nil
	}
	return nil, fmt.Errorf("%q names %d groups: use the group's ID (see `tern groups`)", group, len(hits))
}

// History lists a group's messages and notices, oldest first (limit 0: all).
func (m *Manager) History(group string, limit int) ([]chat.Record, error) {
	s, err := m.resolve(group)
	if err != nil {
		return nil, err
	}
	return m.records.List((*[16]byte)(&s.ID), limit)
}

// AllHistory lists the messages of every group, oldest first.
func (m *Manager) AllHistory(limit int) ([]chat.Record, error) { return m.records.List(nil, limit) }

// ---- owner operations ---------------------------------------------------

// Create makes a group named name owned by this node with the given
// contacts as members, and sends each of them the membership.
func (m *Manager) Create(name string, members []string) (Info, error) {
	name = strings.TrimSpace(name)
	if err := checkName("group name", name, false); err != nil {
		return Info{}, fmt.Errorf("%w: choose a name of 1 to %d bytes on one line", err, MaxNameLen)
	}
	self, err := m.selfMember()
	if err != nil {
		return Info{}, err
	}
	list := []memberState{self}
	for _, who := range members {
		x, err := m.contactMember(who)
		if err != nil {
			return Info{}, err
		}
		if !slices.ContainsFunc(list, func(y memberState) bool { return y.Address == x.Address }) {
			list = append(list, x)
		}
	}
	var g ID
	if _, err := io.ReadFull(m.cfg.Rand, g[:]); err != nil {
		return Info{}, fmt.Errorf("choosing a group id: %w", err)
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	now := m.cfg.Now().UnixMilli()
	s := &state{ID: g, Name: name, OwnerEd: m.cfg.Identity.PublicKey(), Created: now}
	h := m.cfg.Identity.MLDSAHash()
	s.OwnerHash = h[:]
	var with []string
	for _, x := range list[1:] {
		with = append(with, x.Name)
	}
	text := fmt.Sprintf("You created the group %q", name)
	if len(with) > 0 {
		text += " with " + joinNames(with)
	}
	note, err := m.newEpoch(s, list, []string{text}, nil)
	if err != nil {
		return Info{}, err
	}
	in := m.info(s)
	in.Note = note
	return in, nil
}

// Add makes contact who a member of group (owner only): a new epoch with a
// new key, sent to every member including the new one.
func (m *Manager) Add(group, who string) (Info, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	s, err := m.ownedGroup(group)
	if err != nil {
		return Info{}, err
	}
	x, err := m.contactMember(who)
	if err != nil {
		return Info{}, err
	}
	if _, ok := s.member(x.Address); ok {
		return Info{}, fmt.Errorf("%s is already a member of %q", x.Name, s.Name)
	}
	if len(s.Members) >= MaxMembers {
		return Info{}, fmt.Errorf("%q has %d members, the most a group can have", s.Name, MaxMembers)
	}
	note, err := m.newEpoch(s, append(slices.Clone(s.Members), x), []string{"You added " + x.Name}, nil)
	if err != nil {
		return Info{}, err
	}
	in := m.info(s)
	in.Note = note
	return in, nil
}

// Remove takes member who out of group (owner only): a new epoch with a
// new key, sent to the remaining members only; who gets a signed notice
// that it was removed.
func (m *Manager) Remove(group, who string) (Info, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	s, err := m.ownedGroup(group)
	if err != nil {
		return Info{}, err
	}
	x, err := m.memberOf(s, who)
	if err != nil {
		return Info{}, err
	}
	if x.Address == m.self {
		return Info{}, fmt.Errorf("you own %q and cannot remove yourself from it", s.Name)
	}
	rest := slices.DeleteFunc(slices.Clone(s.Members), func(y memberState) bool { return y.Address == x.Address })
	name := m.nameIn(s, x.Address, m.contactNames())
	note, err := m.newEpoch(s, rest, []string{"You removed " + name}, &x)
	if err != nil {
		return Info{}, err
	}
	in := m.info(s)
	in.Note = note
	return in, nil
}

// newEpoch moves s (owned here) to the next epoch with members and a fresh
// key, records the notices, saves the state and sends the update to every
// other member (and the removal notice to removed, if set). The returned
// note names members nothing could be queued for. Called with m.mu held.
func (m *Manager) newEpoch(s *state, members []memberState, notices []string, removed *memberState) (string, error) {
	now := m.cfg.Now().UnixMilli()
	mem := s.membership()
	mem.Epoch = s.Epoch + 1
	mem.Issued = now
	mem.Members = mem.Members[:0]
	for _, x := range members {
		mem.Members = append(mem.Members, Member{Address: x.Address, Name: x.Name, Card: x.Card})
	}
	if _, err := io.ReadFull(m.cfg.Rand, mem.Key[:]); err != nil {
		return "", fmt.Errorf("choosing the group key: %w", err)
	}
	update, err := EncodeUpdate(m.cfg.Identity, mem)
	if err != nil {
		return "", err
	}
	var removal []byte
	if removed != nil {
		h := m.cfg.Identity.MLDSAHash()
		removal, err = EncodeRemoved(m.cfg.Identity, &Removal{Group: s.ID, Epoch: mem.Epoch, Removed: removed.Address,
			OwnerEd25519: m.cfg.Identity.PublicKey(), OwnerMLDSAHash: h, Issued: now})
		if err != nil {
			return "", err
		}
	}
	s.apply(mem, now)
	if err := m.saveNotices(s, s.Epoch, notices, now); err != nil {
		return "", err
	}
	if err := m.saveState(s); err != nil {
		return "", err
	}
	m.publishGroup(s)
	var problems []string
	for _, x := range s.Members {
		if x.Address == m.self {
			continue
		}
		if _, err := m.sendPacket(x, update); err != nil {
			problems = append(problems, fmt.Sprintf("%s: %v", x.Name, err))
		}
	}
	if removed != nil {
		if _, err := m.sendPacket(*removed, removal); err != nil {
			problems = append(problems, fmt.Sprintf("%s: %v", removed.Name, err))
		}
	}
	if len(problems) > 0 {
		m.log.Warn("group update not queued for some members", "group", s.ID.String(), "problems", problems)
		return "not queued for " + strings.Join(problems, "; "), nil
	}
	return "", nil
}

func (m *Manager) ownedGroup(group string) (*state, error) {
	s, err := m.resolve(group)
	if err != nil {
		return nil, err
	}
	if s.owner() != m.self {
		return nil, fmt.Errorf("only the owner of %q (%s) can change its members", s.Name, m.nameIn(s, s.owner(), m.contactNames()))
	}
	return s, nil
}

// memberOf finds a member by contact name, listed name, address or
// unique address prefix.
func (m *Manager) memberOf(s *state, who string) (memberState, error) {
	names := m.contactNames()
	lw := strings.ToLower(who)
	var hits []memberState
	for _, x := range s.Members {
		a := x.Address.String()
		if a == lw || strings.EqualFold(m.nameIn(s, x.Address, names), who) || strings.EqualFold(x.Name, who) {
			return x, nil
		}
		if len(who) >= 4 && strings.HasPrefix(a, lw) {
			hits = append(hits, x)
		}
	}
	if len(hits) == 1 {
		return hits[0], nil
	}
	if len(hits) > 1 {
		return memberState{}, fmt.Errorf("%q matches %d members of %q: use more of the address", who, len(hits), s.Name)
	}
	return memberState{}, fmt.Errorf("%q is not a member of %q (see `tern group show %s`)", who, s.Name, s.Name)
}

func (m *Manager) selfMember() (memberState, error) {
	c := m.cfg.Card()
	b := c.MarshalCompact()
	if b == nil {
		b = c.Marshal()
	}
	if b == nil {
		return memberState{}, errors.New("this node's card cannot be encoded")
	}
	return memberState{Address: m.self, Name: c.Name, Card: b}, nil
}

// contactMember makes a membership entry from a contact: groups are made
// of people whose cards this node holds.
func (m *Manager) contactMember(who string) (memberState, error) {
	c, card, err := m.cfg.Chat.Resolve(who)
	if err != nil {
		return memberState{}, err
	}
	if card == nil {
		return memberState{}, fmt.Errorf("%s wrote to you but is not in your contacts: add their card first (`tern contact add`), so the group can carry it", who)
	}
	if card.Address() == m.self {
		return memberState{}, errors.New("you are in every group you create: name other contacts")
	}
	return memberState{Address: card.Address(), Name: c.Name, Card: card.Marshal()}, nil
}

// ---- texts ----------------------------------------------------------------

// Send writes text to group: encrypted once with the epoch's key, a copy
// sealed to each other member. The record it returns is on disk; its
// Members field follows each copy.
func (m *Manager) Send(group, text string) (chat.Record, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	s, to, err := m.writable(group)
	if err != nil {
		return chat.Record{}, err
	}
	key, ok := s.key(s.Epoch)
	if !ok {
		return chat.Record{}, fmt.Errorf("no key for the current epoch of %q: the stored group state is damaged", s.Name)
	}
	now := m.cfg.Now()
	data, id, err := EncodeText(key, s.ID, s.Epoch, m.self, now.UnixMilli(), text, m.cfg.Rand)
	if err != nil {
		return chat.Record{}, err
	}
	rec := chat.Record{
		ID: fmt.Sprintf("%x", id), Peer: s.ID.String(), PeerName: s.Name, Group: true, Text: text,
		Sent: now.UnixMilli(), Received: now.UnixMilli(), State: chat.StateQueued, Members: map[string]string{},
	}
	for _, x := range to {
		rec.Members[x.Address.String()] = chat.StateQueued
	}
	// History first: a failure after this leaves a visible queued message.
	if err := m.records.Save(s.ID, rec); err != nil {
		return chat.Record{}, err
	}
	var problems []string
	for _, x := range to {
		b, err := m.sendPacket(x, data)
		if err != nil {
			problems = append(problems, fmt.Sprintf("%s: %v", x.Name, err))
			delete(rec.Members, x.Address.String())
			continue
		}
		v := append(id[:], x.Address[:]...)
		if err := m.copies.Put(b.ID[:], v); err != nil {
			m.log.Warn("cannot follow a group copy", "bundle", b.ID.String(), "err", err)
		}
		if p := m.cfg.Chat.PathProblem(x.Address, false); p != "" && rec.Note == "" {
			rec.Note = p
		}
	}
	if len(problems) > 0 {
		rec.Note = "not sent to " + strings.Join(problems, "; ")
		if len(rec.Members) == 0 {
			return rec, fmt.Errorf("message to %q not queued for anyone: %s", s.Name, strings.Join(problems, "; "))
		}
		rec.State = aggregate(rec.Members)
		if err := m.records.Save(s.ID, rec); err != nil {
			return rec, err
		}
	}
	return rec, nil
}

// sendPacket seals a group packet to member x over the pairwise session
// (started from the card in the membership when there is none).
func (m *Manager) sendPacket(x memberState, data []byte) (*bundle.Bundle, error) {
	var card *crypto.Card
	if c, err := crypto.ParseCard(x.Card, m.cfg.Now()); err == nil && c.Address() == x.Address {
		card = c
	}
	return m.cfg.Chat.SendMessage(x.Address, &message.Message{Type: message.Group, Data: data}, chat.SendOptions{Card: card})
}

// aggregate is the state of a group message as a whole: the least advanced
// of its recipients'.
func aggregate(members map[string]string) string {
	least := ""
	for _, st := range members {
		if least == "" || chat.Rank(st) < chat.Rank(least) {
			least = st
		}
	}
	if least == "" {
		return chat.StateQueued
	}
	return least
}

// ---- records --------------------------------------------------------------

// saveNotices files lines about the group itself in its history, with IDs
// derived from the group, the epoch they belong to and their text, so a
// repeated update does not repeat them.
func (m *Manager) saveNotices(s *state, epoch uint64, notices []string, now int64) error {
	for i, text := range notices {
		h := sha256.New()
		h.Write([]byte("tern/v1/group-notice\x00"))
		h.Write(s.ID[:])
		h.Write(binary.BigEndian.AppendUint64(nil, epoch))
		h.Write([]byte{byte(i)})
		h.Write([]byte(text))
		id := [16]byte(h.Sum(nil))
		if _, ok := m.records.Load(id[:]); ok {
			continue
		}
		r := chat.Record{ID: fmt.Sprintf("%x", id), Peer: s.ID.String(), PeerName: s.Name, Group: true, Kind: "notice",
			Incoming: true, Text: text, Sent: now, Received: now}
		if err := m.records.Save(s.ID, r); err != nil {
			return err
		}
		m.cfg.Chat.Publish(chat.Event{Type: "message", Message: r})
	}
	return nil
}

// publishGroup tells subscribers that a group's membership or state
// changed (the UI reloads its group list).
func (m *Manager) publishGroup(s *state) {
	m.cfg.Chat.Publish(chat.Event{Type: "group", Message: chat.Record{Peer: s.ID.String(), PeerName: s.Name, Group: true}})
	if m.cfg.OnChange != nil {
		m.cfg.OnChange(s.ID)
	}
}

func joinNames(names []string) string {
	switch len(names) {
	case 0:
		return ""
	case 1:
		return names[0]
	}
	return strings.Join(names[:len(names)-1], ", ") + " and " + names[len(names)-1]
}
