package store

import (
	"bytes"
	"errors"
	"fmt"

	bolt "go.etcd.io/bbolt"
)

// KV is a named durable key-value bucket (sessions, contacts, links,
// messages, settings...). Writes are fsynced when they return nil and are
// group-committed with other writers. Keys are non-empty byte strings visited
// in byte order, so big-endian timestamps make time-ordered keys. Every slice
// a KV hands out is a copy the caller may keep.
type KV struct {
	s    *Store
	name []byte
}

// Bucket returns the named bucket; it is created on its first Put. Names
// share no space with the store's own buckets.
func (s *Store) Bucket(name string) *KV {
	return &KV{s: s, name: []byte(kvPrefix + name)}
}

func (kv *KV) wrap(op string, err error) error {
	return fmt.Errorf("store: %s in bucket %q of %s: %w", op, kv.name[len(kvPrefix):], kv.s.path, err)
}

// Get returns a copy of the value under key, or nil, nil if there is none.
func (kv *KV) Get(key []byte) ([]byte, error) {
	var out []byte
	err := kv.s.db.View(func(tx *bolt.Tx) error {
		if b := tx.Bucket(kv.name); b != nil {
			if v := b.Get(key); v != nil {
				out = append([]byte{}, v...)
			}
		}
		return nil
	})
	if err != nil {
		return nil, kv.wrap("get", err)
	}
	return out, nil
}

// Put stores value under key durably.
func (kv *KV) Put(key, value []byte) error {
	if len(key) == 0 {
		return kv.wrap("put", errors.New("empty key: keys must be at least one byte"))
	}
	k := append([]byte(nil), key...)
	v := append([]byte{}, value...)
	err := kv.s.update(func(tx *bolt.Tx) error {
		b, err := tx.CreateBucketIfNotExists(kv.name)
		if err != nil {
			return err
		}
		return b.Put(k, v)
	})
	if err != nil {
		return kv.wrap("put", err)
	}
	return nil
}

// Delete removes key durably; a missing key is not an error.
func (kv *KV) Delete(key []byte) error {
	if len(key) == 0 {
		return nil
	}
	k := append([]byte(nil), key...)
	err := kv.s.update(func(tx *bolt.Tx) error {
		b := tx.Bucket(kv.name)
		if b == nil {
			return nil
		}
		return b.Delete(k)
	})
	if err != nil {
		return kv.wrap("delete", err)
	}
	return nil
}

// ForEach calls fn for every key in byte order, stopping at fn's first error,
// which it returns. fn must not write to the store (it runs inside a read
// transaction; a write from fn would deadlock on a full batch).
func (kv *KV) ForEach(fn func(k, v []byte) error) error {
	return kv.ForEachPrefix(nil, fn)
}

// ForEachPrefix is ForEach restricted to keys starting with prefix.
func (kv *KV) ForEachPrefix(prefix []byte, fn func(k, v []byte) error) error {
	var fnErr error
	err := kv.s.db.View(func(tx *bolt.Tx) error {
		b := tx.Bucket(kv.name)
		if b == nil {
			return nil
		}
		c := b.Cursor()
		for k, v := c.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix); k, v = c.Next() {
			if v == nil && b.Bucket(k) != nil {
				continue
			}
			if err := fn(append([]byte(nil), k...), append([]byte{}, v...)); err != nil {
				fnErr = err
				return nil
			}
		}
		return nil
	})
	if err != nil {
		return kv.wrap("iterate", err)
	}
	return fnErr
}

// Last returns the greatest key and its value, or nil, nil, nil when the
// bucket is empty.
func (kv *KV) Last() (key, value []byte, err error) {
	return kv.LastPrefix(nil)
}

// LastPrefix returns the greatest key starting with prefix and its value, or
// nil, nil, nil when there is none: with big-endian time keys, the newest
// entry under prefix.
func (kv *KV) LastPrefix(prefix []byte) (key, value []byte, err error) {
	err = kv.s.db.View(func(tx *bolt.Tx) error {
		b := tx.Bucket(kv.name)
		if b == nil {
			return nil
		}
		c := b.Cursor()
		var k, v []byte
		if next := prefixEnd(prefix); next == nil {
			k, v = c.Last()
		} else if k, v = c.Seek(next); k == nil {
			k, v = c.Last()
		} else {
			k, v = c.Prev()
		}
		if k != nil && bytes.HasPrefix(k, prefix) {
			key, value = append([]byte(nil), k...), append([]byte{}, v...)
		}
		return nil
	})
	if err != nil {
		return nil, nil, kv.wrap("last", err)
	}
	return key, value, nil
}

// prefixEnd returns the smallest key greater than every key starting with
// prefix, or nil if there is none (empty or all-0xff prefix).
func prefixEnd(prefix []byte) []byte {
	end := append([]byte(nil), prefix...)
	for i := len(end) - 1; i >= 0; i-- {
		if end[i] < 0xff {
			end[i]++
			return end[:i+1]
		}
	}
	return nil
}
