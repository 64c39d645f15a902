package group

// What the file application needs of groups: who a file for a group goes
// to, whether a file offered for a group comes from a current member, and
// the cards and names of members who are not contacts.

import (
	"fmt"
	"strings"

	"github.com/ternmesh/tern/crypto"
)

// Audience is who something sent to a group now goes to.
type Audience struct {
	ID    ID
	Name  string
	Epoch uint64
	// Members are the current members but this node, each once.
	Members []crypto.Address
}

// Audience resolves group (ID, ID prefix or name) to its current members
// but this node. It refuses when this node was removed or is alone in the
// group, as Send does: a removed member gets nothing sent after its
// removal because it is no longer listed.
func (m *Manager) Audience(group string) (Audience, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	s, to, err := m.writable(group)
	if err != nil {
		return Audience{}, err
	}
	a := Audience{ID: s.ID, Name: s.Name, Epoch: s.Epoch}
	for _, x := range to {
		a.Members = append(a.Members, x.Address)
	}
	return a, nil
}

// writable resolves a group this node may send to and its other members.
// Called with m.mu held.
func (m *Manager) writable(group string) (*state, []memberState, error) {
	s, err := m.resolve(group)
	if err != nil {
		return nil, nil, err
	}
	if s.Removed != 0 {
		return nil, nil, fmt.Errorf("%s removed you from %q: you can no longer write to it", m.nameIn(s, s.owner(), m.contactNames()), s.Name)
	}
	var to []memberState
	for _, x := range s.Members {
		if x.Address != m.self {
			to = append(to, x)
		}
	}
	if len(to) == 0 {
		return nil, nil, fmt.Errorf("%q has no other members yet: add someone first (`tern group add %s <contact>`)", s.Name, s.Name)
	}
	return s, to, nil
}

// Standing is what Judge says of who labelled something for a group.
type Standing int

// Standings.
const (
	// CurrentMember: who and this node are current members.
	CurrentMember Standing = iota + 1
	// Outside: who is not a current member, or this node is not.
	Outside
	// Behind: this node holds no membership of that epoch yet (or does
	// not know the group): an update is probably on its way.
	Behind
)

// Judge says whether who, writing as of membership epoch, is a current
// member of group g here. It returns the group's name when the group is
// known, and for Outside the reason in words.
func (m *Manager) Judge(g ID, epoch uint64, who crypto.Address) (st Standing, name, why string) {
	s, err := m.loadState(g)
	if err != nil {
		m.log.Warn("cannot judge a group label", "group", g.String(), "err", err)
		return Behind, "", ""
	}
	if s == nil || epoch > max(s.Epoch, s.Removed) {
		return Behind, "", ""
	}
	names := m.contactNames()
	if s.Removed != 0 {
		return Outside, s.Name, fmt.Sprintf("%s removed you from that group", m.nameIn(s, s.owner(), names))
	}
	if _, ok := s.member(who); !ok {
		return Outside, s.Name, "they are not a member of it (any more)"
	}
	return CurrentMember, s.Name, ""
}

// MemberCard returns the name and card the membership of a group lists
// for a, preferring groups this node is still in ("" and nil if a is in
// none). It lets a file reach a fellow member who is not a contact.
func (m *Manager) MemberCard(a crypto.Address) (string, *crypto.Card) {
	ss, err := m.allStates()
	if err != nil {
		m.log.Warn("cannot read groups", "err", err)
		return "", nil
	}
	var name string
	var card *crypto.Card
	for _, s := range ss {
		x, ok := s.member(a)
		if !ok {
			continue
		}
		c, err := crypto.ParseCard(x.Card, m.cfg.Now())
		if err != nil || c.Address() != a {
			continue
		}
		name, card = strings.TrimSpace(x.Name), c
		if s.Removed == 0 {
			break
		}
	}
	return name, card
}
