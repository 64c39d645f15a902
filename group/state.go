package group

import (
	"cmp"
	"encoding/json"
	"fmt"
	"slices"

	"github.com/ternmesh/tern/crypto"
)

// keepEpochs is how many epoch keys a member keeps: texts written in one of
// the last few epochs by a member whose update came late still open.
const keepEpochs = 8

// state is what a node keeps of one group (bucket "groups", key: the ID).
type state struct {
	ID        ID            `json:"id"`
	Name      string        `json:"name"`
	OwnerEd   []byte        `json:"owner_ed25519"`
	OwnerHash []byte        `json:"owner_mldsa_hash"`
	Epoch     uint64        `json:"epoch"`
	Members   []memberState `json:"members"`
	Keys      []epochKey    `json:"keys"`              // oldest first, at most keepEpochs
	Removed   uint64        `json:"removed,omitempty"` // epoch this node was removed at; 0 while a member
	Created   int64         `json:"created"`
	Updated   int64         `json:"updated"`
}

type memberState struct {
	Address crypto.Address `json:"address"`
	Name    string         `json:"name"`
	Card    []byte         `json:"card"`
}

type epochKey struct {
	Epoch uint64 `json:"epoch"`
	Key   []byte `json:"key"`
}

func (s *state) owner() crypto.Address {
	return crypto.DeriveAddress(s.OwnerEd, [32]byte(s.OwnerHash))
}

func (s *state) member(a crypto.Address) (memberState, bool) {
	for _, m := range s.Members {
		if m.Address == a {
			return m, true
		}
	}
	return memberState{}, false
}

func (s *state) key(epoch uint64) ([KeySize]byte, bool) {
	for _, k := range s.Keys {
		if k.Epoch == epoch && len(k.Key) == KeySize {
			return [KeySize]byte(k.Key), true
		}
	}
	return [KeySize]byte{}, false
}

// apply moves s to the membership m (already checked to be newer).
func (s *state) apply(m *Membership, now int64) {
	s.Name, s.Epoch, s.Updated = m.Name, m.Epoch, now
	s.OwnerEd, s.OwnerHash = m.OwnerEd25519, m.OwnerMLDSAHash[:]
	s.Members = s.Members[:0]
	for _, x := range m.Members {
		s.Members = append(s.Members, memberState{Address: x.Address, Name: x.Name, Card: x.Card})
	}
	s.Keys = append(s.Keys, epochKey{Epoch: m.Epoch, Key: m.Key[:]})
	slices.SortFunc(s.Keys, func(a, b epochKey) int { return cmp.Compare(a.Epoch, b.Epoch) })
	if len(s.Keys) > keepEpochs {
		s.Keys = s.Keys[len(s.Keys)-keepEpochs:]
	}
	s.Removed = 0
}

// membership rebuilds the signed form of the current epoch (owner only:
// it is signed again with the new epoch's changes).
func (s *state) membership() *Membership {
	m := &Membership{Group: s.ID, Epoch: s.Epoch, Name: s.Name, OwnerEd25519: s.OwnerEd, OwnerMLDSAHash: [32]byte(s.OwnerHash)}
	for _, x := range s.Members {
		m.Members = append(m.Members, Member{Address: x.Address, Name: x.Name, Card: x.Card})
	}
	return m
}

func (m *Manager) loadState(g ID) (*state, error) {
	v, err := m.groups.Get(g[:])
	if err != nil {
		return nil, err
	}
	if v == nil {
		return nil, nil
	}
	var s state
	if err := json.Unmarshal(v, &s); err != nil {
		return nil, fmt.Errorf("stored state of group %s is unreadable: %w", g, err)
	}
	if len(s.OwnerEd) != 32 || len(s.OwnerHash) != 32 {
		return nil, fmt.Errorf("stored state of group %s has no valid owner key", g)
	}
	return &s, nil
}

func (m *Manager) saveState(s *state) error {
	v, err := json.Marshal(s)
	if err != nil {
		return err
	}
	if err := m.groups.Put(s.ID[:], v); err != nil {
		return fmt.Errorf("saving group %s: %w", s.Name, err)
	}
	return nil
}

func (m *Manager) allStates() ([]*state, error) {
	var out []*state
	err := m.groups.ForEach(func(k, v []byte) error {
		var s state
		if json.Unmarshal(v, &s) != nil || len(s.OwnerEd) != 32 || len(s.OwnerHash) != 32 {
			m.log.Warn("skipping unreadable group state", "group", fmt.Sprintf("%x", k))
			return nil
		}
		out = append(out, &s)
		return nil
	})
	return out, err
}
