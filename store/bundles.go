package store

import (
	"bytes"
	"fmt"

	bolt "go.etcd.io/bbolt"

	"github.com/ternmesh/tern/bundle"
)

// expireChunk bounds how many expiry entries one Expire transaction handles,
// so a large backlog does not build one huge transaction.
const expireChunk = 4096

// Put stores records durably: when it returns nil for a record, that record
// is fsynced. Concurrent callers share one commit (group commit). It returns
// one error per record: nil, ErrDuplicate (the ID is stored or was seen and
// has not expired), a *QuotaError (wrapping ErrQuota), or a validation or
// disk error. A refused record does not affect the others in the call, and a
// later record with the same ID as an earlier one in the same call is a
// duplicate.
func (s *Store) Put(recs ...Record) []error {
	errs := make([]error, len(recs))
	if len(recs) == 0 {
		return errs
	}
	now := s.opts.Now().UnixMilli()
	invalid := make([]error, len(recs))
	for i := range recs {
		if recs[i].Expires <= 0 {
			invalid[i] = fmt.Errorf("store: bundle %x has no expiry time: set Record.Expires to the local unix ms when it must be dropped", recs[i].ID[:])
		}
	}
	// The committer may run the function more than once (after another
	// writer's function failed), so it rebuilds errs from scratch every time.
	err := s.update(func(tx *bolt.Tx) error {
		copy(errs, invalid)
		for i := range recs {
			if errs[i] != nil {
				continue
			}
			refused, err := s.putOne(tx, &recs[i], now)
			if err != nil {
				return err
			}
			errs[i] = refused
		}
		return nil
	})
	if err != nil {
		err = fmt.Errorf("store: writing %d bundles to %s: nothing in this call was stored: %w", len(recs), s.path, err)
		for i := range errs {
			if invalid[i] == nil {
				errs[i] = err
			}
		}
	}
	return errs
}

// putOne stores r in tx. refused is the per-record verdict; err is a failure
// of the transaction itself.
func (s *Store) putOne(tx *bolt.Tx, r *Record, now int64) (refused, err error) {
	seen := tx.Bucket(bktSeen)
	if seen.Get(r.ID[:]) != nil {
		// A seen ID is a duplicate, unless the caller re-admits a bundle
		// that left this store and came back (a routing loop): then the
		// only copy would otherwise be lost. A stored one stays a duplicate.
		if !r.Readmit || tx.Bucket(bktBundles).Get(r.ID[:]) != nil {
			return ErrDuplicate, nil
		}
	}
	size := int64(len(r.Raw))
	meta := tx.Bucket(bktMeta)
	useNbr, useDest := tx.Bucket(bktUseNbr), tx.Bucket(bktUseDest)
	total := decodeUsage(meta.Get(keyTotal))
	if total.bytes+size > s.opts.MaxBytes {
		return &QuotaError{Quota: "total", Used: total.bytes, Size: size, Limit: s.opts.MaxBytes}, nil
	}
	nbr := decodeUsage(useNbr.Get(r.From[:]))
	if r.From != (bundle.Addr{}) && nbr.bytes+size > s.opts.MaxBytesPerNeighbour {
		return &QuotaError{Quota: "neighbour", Addr: r.From, Used: nbr.bytes, Size: size, Limit: s.opts.MaxBytesPerNeighbour}, nil
	}
	dst := decodeUsage(useDest.Get(r.Dest[:]))
	if dst.bytes+size > s.opts.MaxBytesPerDest {
		return &QuotaError{Quota: "destination", Addr: r.Dest, Used: dst.bytes, Size: size, Limit: s.opts.MaxBytesPerDest}, nil
	}

	rec := *r
	if rec.Received == 0 {
		rec.Received = now
	}
	bundles := tx.Bucket(bktBundles)
	seq, err := bundles.NextSequence()
	if err != nil {
		return nil, err
	}
	id := append([]byte(nil), r.ID[:]...)
	puts := []struct {
		bucket *bolt.Bucket
		k, v   []byte
	}{
		{bundles, id, encodeRecord(&rec, seq)},
		{tx.Bucket(bktByHop), indexKey(rec.NextHop, seq), id},
		{tx.Bucket(bktByDest), indexKey(rec.Dest, seq), id},
		{seen, id, putU64(uint64(rec.Expires))},
		{tx.Bucket(bktExpiry), expiryKey(rec.Expires, rec.ID), []byte{}},
		{meta, keyTotal, usage{total.bytes + size, total.bundles + 1}.encode()},
		{useNbr, append([]byte(nil), rec.From[:]...), usage{nbr.bytes + size, nbr.bundles + 1}.encode()},
		{useDest, append([]byte(nil), rec.Dest[:]...), usage{dst.bytes + size, dst.bundles + 1}.encode()},
	}
	for _, p := range puts {
		if err := p.bucket.Put(p.k, p.v); err != nil {
			return nil, err
		}
	}
	return nil, nil
}

// MarkSeen adds IDs to the dedupe set without storing a bundle (for example
// one delivered straight to a local application), until expires (local unix
// ms). An ID already seen keeps the later of the two expiry times. Durable
// when it returns nil.
func (s *Store) MarkSeen(expires int64, ids ...bundle.ID) error {
	if expires <= 0 {
		return fmt.Errorf("store: MarkSeen needs an expiry time in local unix ms, got %d", expires)
	}
	err := s.update(func(tx *bolt.Tx) error {
		seen, exp := tx.Bucket(bktSeen), tx.Bucket(bktExpiry)
		for _, id := range ids {
			if old := seen.Get(id[:]); old != nil && int64(u64(old)) >= expires {
				continue
			}
			if err := seen.Put(append([]byte(nil), id[:]...), putU64(uint64(expires))); err != nil {
				return err
			}
			if err := exp.Put(expiryKey(expires, id), []byte{}); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("store: marking %d bundle IDs seen in %s: %w", len(ids), s.path, err)
	}
	return nil
}

// Get returns the stored record with that ID, or an error wrapping
// ErrNotFound. The record owns its memory.
func (s *Store) Get(id bundle.ID) (Record, error) {
	var r Record
	err := s.db.View(func(tx *bolt.Tx) error {
		v := tx.Bucket(bktBundles).Get(id[:])
		if v == nil {
			return fmt.Errorf("%w: %x", ErrNotFound, id[:])
		}
		var err error
		r, _, err = decodeRecord(id, v)
		return err
	})
	return r, err
}

// Has reports whether the ID is stored or was seen and has not yet been
// dropped by Expire (the dedupe test). A read error counts as not seen and is
// logged.
func (s *Store) Has(id bundle.ID) bool {
	var ok bool
	err := s.db.View(func(tx *bolt.Tx) error {
		ok = tx.Bucket(bktSeen).Get(id[:]) != nil
		return nil
	})
	if err != nil {
		s.log.Warn("store dedupe lookup failed", "id", fmt.Sprintf("%x", id[:]), "err", err)
	}
	return ok
}

// Delete removes the bundles durably (group-committed like Put). IDs that are
// not stored are ignored, so deleting twice is harmless. The IDs stay in the
// seen set until their Expires, so a late copy is still a duplicate.
func (s *Store) Delete(ids ...bundle.ID) error {
	if len(ids) == 0 {
		return nil
	}
	err := s.update(func(tx *bolt.Tx) error {
		for _, id := range ids {
			if _, err := deleteRecord(tx, id, nil); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("store: deleting %d bundles from %s: %w", len(ids), s.path, err)
	}
	return nil
}

// deleteRecord removes a record with its index entries and counters, and
// reports whether there was one. When onlyExpires is not nil, the record is
// removed only if its Expires equals *onlyExpires. The error is a failure of
// the transaction.
func deleteRecord(tx *bolt.Tx, id bundle.ID, onlyExpires *int64) (bool, error) {
	bundles := tx.Bucket(bktBundles)
	v := bundles.Get(id[:])
	if v == nil || len(v) < recordHeaderLen {
		if v != nil { // damaged record: drop it, it cannot be indexed or counted
			return true, bundles.Delete(id[:])
		}
		return false, nil
	}
	var dest, from, hop bundle.Addr
	copy(dest[:], v[offDest:])
	copy(from[:], v[offFrom:])
	copy(hop[:], v[offNextHop:])
	expires := int64(u64(v[offExpires:]))
	seq := u64(v[offSeq:])
	size := rawLen(v)
	if onlyExpires != nil && *onlyExpires != expires {
		return false, nil
	}
	if err := bundles.Delete(id[:]); err != nil {
		return false, err
	}
	if err := tx.Bucket(bktByHop).Delete(indexKey(hop, seq)); err != nil {
		return false, err
	}
	if err := tx.Bucket(bktByDest).Delete(indexKey(dest, seq)); err != nil {
		return false, err
	}
	meta := tx.Bucket(bktMeta)
	t := decodeUsage(meta.Get(keyTotal))
	if err := meta.Put(keyTotal, usage{t.bytes - size, t.bundles - 1}.encode()); err != nil {
		return false, err
	}
	for _, c := range []struct {
		b *bolt.Bucket
		a bundle.Addr
	}{{tx.Bucket(bktUseNbr), from}, {tx.Bucket(bktUseDest), dest}} {
		u := decodeUsage(c.b.Get(c.a[:]))
		u = usage{u.bytes - size, u.bundles - 1}
		var err error
		if u.bundles <= 0 {
			err = c.b.Delete(c.a[:])
		} else {
			err = c.b.Put(append([]byte(nil), c.a[:]...), u.encode())
		}
		if err != nil {
			return false, err
		}
	}
	return true, nil
}

// SetNextHop moves the bundles to the queue of hop (zero = unrouted), durably
// and group-committed. Each keeps its place in age order. IDs that are not
// stored are skipped and reported in an error wrapping ErrNotFound; the
// others are moved regardless.
func (s *Store) SetNextHop(hop bundle.Addr, ids ...bundle.ID) error {
	var missing int
	var firstMissing bundle.ID
	err := s.update(func(tx *bolt.Tx) error {
		missing = 0
		bundles, byHop := tx.Bucket(bktBundles), tx.Bucket(bktByHop)
		for _, id := range ids {
			v := bundles.Get(id[:])
			if len(v) < recordHeaderLen {
				if missing == 0 {
					firstMissing = id
				}
				missing++
				continue
			}
			var old bundle.Addr
			copy(old[:], v[offNextHop:])
			if old == hop {
				continue
			}
			seq := u64(v[offSeq:])
			nv := append([]byte(nil), v...)
			copy(nv[offNextHop:], hop[:])
			if err := byHop.Delete(indexKey(old, seq)); err != nil {
				return err
			}
			if err := byHop.Put(indexKey(hop, seq), append([]byte(nil), id[:]...)); err != nil {
				return err
			}
			if err := bundles.Put(append([]byte(nil), id[:]...), nv); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("store: setting next hop of %d bundles in %s: %w", len(ids), s.path, err)
	}
	if missing > 0 {
		return fmt.Errorf("%w: %d of %d bundles (first %x) are not stored, the others were moved to next hop %x", ErrNotFound, missing, len(ids), firstMissing[:], hop[:])
	}
	return nil
}

// ForNextHop returns up to limit records queued for hop, oldest first
// (limit <= 0: all). The zero hop is the unrouted queue.
func (s *Store) ForNextHop(hop bundle.Addr, limit int) ([]Record, error) {
	return s.scanIndex(bktByHop, hop, limit)
}

// Unrouted returns up to limit records with no next hop, oldest first
// (limit <= 0: all).
func (s *Store) Unrouted(limit int) ([]Record, error) {
	return s.scanIndex(bktByHop, bundle.Addr{}, limit)
}

// ForDest returns every record held for dest, oldest first.
func (s *Store) ForDest(dest bundle.Addr) ([]Record, error) {
	return s.scanIndex(bktByDest, dest, 0)
}

func (s *Store) scanIndex(index []byte, a bundle.Addr, limit int) ([]Record, error) {
	var out []Record
	err := s.db.View(func(tx *bolt.Tx) error {
		bundles := tx.Bucket(bktBundles)
		c := tx.Bucket(index).Cursor()
		for k, v := c.Seek(a[:]); k != nil && bytes.HasPrefix(k, a[:]); k, v = c.Next() {
			if limit > 0 && len(out) >= limit {
				break
			}
			var id bundle.ID
			copy(id[:], v)
			rv := bundles.Get(id[:])
			if rv == nil {
				s.log.Warn("store index entry without a record", "index", string(index), "id", fmt.Sprintf("%x", id[:]))
				continue
			}
			r, _, err := decodeRecord(id, rv)
			if err != nil {
				return err
			}
			out = append(out, r)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("store: listing %s %x in %s: %w", index, a[:], s.path, err)
	}
	return out, nil
}

// Expire drops, durably, every record whose Expires is before now and every
// seen-set entry past its time. It returns how many bundles were dropped.
func (s *Store) Expire() (int, error) {
	now := s.opts.Now().UnixMilli()
	dropped := 0
	for {
		var n, visited int
		err := s.db.Update(func(tx *bolt.Tx) error {
			n, visited = 0, 0
			exp, seen := tx.Bucket(bktExpiry), tx.Bucket(bktSeen)
			var keys [][]byte
			c := exp.Cursor()
			for k, _ := c.First(); k != nil && len(keys) < expireChunk; k, _ = c.Next() {
				if int64(u64(k)) >= now {
					break
				}
				keys = append(keys, append([]byte(nil), k...))
			}
			visited = len(keys)
			for _, k := range keys {
				if len(k) != 24 {
					if err := exp.Delete(k); err != nil {
						return err
					}
					continue
				}
				expires := int64(u64(k))
				var id bundle.ID
				copy(id[:], k[8:])
				gone, err := deleteRecord(tx, id, &expires)
				if err != nil {
					return err
				}
				if gone {
					n++
				}
				if sv := seen.Get(id[:]); sv != nil && int64(u64(sv)) == expires {
					if err := seen.Delete(id[:]); err != nil {
						return err
					}
				}
				if err := exp.Delete(k); err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
			return dropped, fmt.Errorf("store: expiring bundles in %s: %w", s.path, err)
		}
		dropped += n
		if visited < expireChunk {
			break
		}
	}
	if dropped > 0 {
		s.log.Debug("store expired bundles", "dropped", dropped)
	}
	return dropped, nil
}

// All returns up to limit stored records in ID order (limit <= 0: all), for
// users inspecting what a node holds.
func (s *Store) All(limit int) ([]Record, error) {
	var out []Record
	err := s.db.View(func(tx *bolt.Tx) error {
		c := tx.Bucket(bktBundles).Cursor()
		for k, v := c.First(); k != nil && (limit <= 0 || len(out) < limit); k, v = c.Next() {
			var id bundle.ID
			copy(id[:], k)
			r, _, err := decodeRecord(id, v)
			if err != nil {
				return err
			}
			out = append(out, r)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("store: listing bundles in %s: %w", s.path, err)
	}
	return out, nil
}

// CopyUpdate sets the copy budget and the next hop of one stored bundle.
type CopyUpdate struct {
	ID      bundle.ID
	Copies  uint16      // the new budget; 0 turns the record into plain custody
	NextHop bundle.Addr // the queue it moves to (zero = unrouted)
}

// SetCopies applies the updates durably and group-committed: each record
// gets its new copy budget and moves to its new queue, keeping its place in
// age order. IDs that are not stored are skipped and reported in an error
// wrapping ErrNotFound; the others are updated regardless.
func (s *Store) SetCopies(updates ...CopyUpdate) error {
	var missing int
	var firstMissing bundle.ID
	err := s.update(func(tx *bolt.Tx) error {
		missing = 0
		bundles, byHop := tx.Bucket(bktBundles), tx.Bucket(bktByHop)
		for _, u := range updates {
			v := bundles.Get(u.ID[:])
			if headerLen(v) == 0 {
				if missing == 0 {
					firstMissing = u.ID
				}
				missing++
				continue
			}
			r, seq, err := decodeRecord(u.ID, v)
			if err != nil {
				return err
			}
			if r.NextHop != u.NextHop {
				if err := byHop.Delete(indexKey(r.NextHop, seq)); err != nil {
					return err
				}
				if err := byHop.Put(indexKey(u.NextHop, seq), append([]byte(nil), u.ID[:]...)); err != nil {
					return err
				}
			}
			r.Copies, r.NextHop = u.Copies, u.NextHop
			if err := bundles.Put(append([]byte(nil), u.ID[:]...), encodeRecord(&r, seq)); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("store: setting copy budgets of %d bundles in %s: %w", len(updates), s.path, err)
	}
	if missing > 0 {
		return fmt.Errorf("%w: %d of %d bundles (first %x) are not stored, the others were updated", ErrNotFound, missing, len(updates), firstMissing[:])
	}
	return nil
}

// HopIDs returns the IDs of up to limit records queued for hop, oldest
// first (limit <= 0: all), without reading the records.
func (s *Store) HopIDs(hop bundle.Addr, limit int) ([]bundle.ID, error) {
	var out []bundle.ID
	err := s.db.View(func(tx *bolt.Tx) error {
		c := tx.Bucket(bktByHop).Cursor()
		for k, v := c.Seek(hop[:]); k != nil && bytes.HasPrefix(k, hop[:]); k, v = c.Next() {
			if limit > 0 && len(out) >= limit {
				break
			}
			var id bundle.ID
			copy(id[:], v)
			out = append(out, id)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("store: listing IDs queued for %x in %s: %w", hop[:], s.path, err)
	}
	return out, nil
}

// Stored reports, for each ID, whether a record is stored under it now
// (not only seen), in one read transaction without decoding the records.
// A read error counts as not stored and is logged.
func (s *Store) Stored(ids []bundle.ID) []bool {
	out := make([]bool, len(ids))
	err := s.db.View(func(tx *bolt.Tx) error {
		b := tx.Bucket(bktBundles)
		for i, id := range ids {
			out[i] = b.Get(id[:]) != nil
		}
		return nil
	})
	if err != nil {
		s.log.Warn("store lookup failed", "ids", len(ids), "err", err)
	}
	return out
}

// IDs returns the IDs of up to limit stored records in ID order (limit <=
// 0: all), without reading the records.
func (s *Store) IDs(limit int) ([]bundle.ID, error) {
	var out []bundle.ID
	err := s.db.View(func(tx *bolt.Tx) error {
		c := tx.Bucket(bktBundles).Cursor()
		for k, _ := c.First(); k != nil && (limit <= 0 || len(out) < limit); k, _ = c.Next() {
			var id bundle.ID
			copy(id[:], k)
			out = append(out, id)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("store: listing bundle IDs in %s: %w", s.path, err)
	}
	return out, nil
}
