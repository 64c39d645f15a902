package chat

import (
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"sort"

	"github.com/ternmesh/tern/store"
)

// Records is a durable message history: Records filed under a 16-byte
// conversation key (a peer's address, or a group's ID) in time order, and
// found again by message ID. Chat keeps its 1:1 history in one; package
// group keeps its channels in another. Methods are safe for concurrent use,
// but a read-modify-write of one record must be serialised by the caller.
type Records struct {
	history *store.KV // key: conversation(16) | received ms (8 BE) | message id (16)
	index   *store.KV // message id -> history key
}

// NewRecords opens the history kept in the named buckets of st.
func NewRecords(st *store.Store, history, index string) *Records {
	return &Records{history: st.Bucket(history), index: st.Bucket(index)}
}

func recordKey(conv [16]byte, received int64, id [16]byte) []byte {
	k := make([]byte, 0, 40)
	k = append(k, conv[:]...)
	k = binary.BigEndian.AppendUint64(k, uint64(received))
	return append(k, id[:]...)
}

// Save stores r (new, or an update of a record with the same ID, which
// keeps its place in the history) under conversation conv.
func (rs *Records) Save(conv [16]byte, r Record) error {
	var id [16]byte
	if b, err := hex.DecodeString(r.ID); err != nil || len(b) != len(id) {
		return fmt.Errorf("message id %q is not 32 hex characters", r.ID)
	} else {
		copy(id[:], b)
	}
	key, err := rs.index.Get(id[:])
	if err != nil {
		return err
	}
	if key == nil {
		key = recordKey(conv, r.Received, id)
		if err := rs.index.Put(id[:], key); err != nil {
			return err
		}
	}
	v, _ := json.Marshal(r)
	return rs.history.Put(key, v)
}

// Load returns the record with message ID id.
func (rs *Records) Load(id []byte) (Record, bool) {
	key, err := rs.index.Get(id)
	if err != nil || key == nil {
		return Record{}, false
	}
	v, err := rs.history.Get(key)
	if err != nil || v == nil {
		return Record{}, false
	}
	var r Record
	return r, json.Unmarshal(v, &r) == nil
}

// List returns the records of conversation conv oldest first, or of every
// conversation (sorted by Received) when conv is nil; limit 0 means all,
// else the newest limit.
func (rs *Records) List(conv *[16]byte, limit int) ([]Record, error) {
	var out []Record
	visit := func(_, v []byte) error {
		var r Record
		if err := json.Unmarshal(v, &r); err != nil {
			return err
		}
		out = append(out, r)
		return nil
	}
	var err error
	if conv != nil {
		err = rs.history.ForEachPrefix(conv[:], visit)
	} else {
		err = rs.history.ForEach(visit)
		sort.SliceStable(out, func(i, j int) bool { return out[i].Received < out[j].Received })
	}
	if limit > 0 && len(out) > limit {
		out = out[len(out)-limit:]
	}
	return out, err
}
