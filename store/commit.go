package store

import (
	"errors"
	"fmt"

	bolt "go.etcd.io/bbolt"
)

// maxGroup caps how many write calls share one transaction.
const maxGroup = 4096

// ErrClosed is returned by writes made after Close.
var ErrClosed = errors.New("store: closed")

// call is one writer waiting for its group commit.
type call struct {
	fn   func(*bolt.Tx) error
	done chan error
}

// update runs fn in a durable write transaction shared with every other
// writer waiting at the same moment (group commit): it returns after the
// transaction that included fn was fsynced. While one commit is syncing, the
// next group gathers, so the group grows with the load and no writer waits on
// a timer. fn may run more than once (when another fn in its group fails, the
// group is retried without it), so it must be idempotent and reset any state
// it reports through.
func (s *Store) update(fn func(*bolt.Tx) error) error {
	if s.opts.useBoltBatch {
		return s.db.Batch(fn)
	}
	c := &call{fn: fn, done: make(chan error, 1)}
	select {
	case s.calls <- c:
		return <-c.done
	case <-s.quit:
		return fmt.Errorf("%w: writes to %s after Close", ErrClosed, s.path)
	}
}

// committer is the single goroutine that runs group commits until Close.
func (s *Store) committer() {
	defer close(s.stopped)
	for {
		var first *call
		select {
		case first = <-s.calls:
		case <-s.quit:
			return
		}
		group := []*call{first}
	gather:
		for len(group) < maxGroup {
			select {
			case c := <-s.calls:
				group = append(group, c)
			default:
				break gather
			}
		}
		s.commitGroup(group)
	}
}

// commitGroup commits the group in one transaction. If one call fails, the
// transaction is rolled back, that call is retried alone (so it gets its own
// error) and the rest are committed again without it.
func (s *Store) commitGroup(group []*call) {
	for len(group) > 0 {
		failed := -1
		s.commits.Add(1)
		err := s.db.Update(func(tx *bolt.Tx) error {
			for i, c := range group {
				if err := safeCall(c.fn, tx); err != nil {
					failed = i
					return err
				}
			}
			return nil
		})
		if failed < 0 || len(group) == 1 {
			for _, c := range group {
				c.done <- err
			}
			return
		}
		bad := group[failed]
		bad.done <- s.db.Update(func(tx *bolt.Tx) error { return safeCall(bad.fn, tx) })
		group = append(group[:failed:failed], group[failed+1:]...)
	}
}

// safeCall turns a panic in a write function into an error, so one bad
// writer cannot take down the committer and every other writer with it.
func safeCall(fn func(*bolt.Tx) error, tx *bolt.Tx) (err error) {
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("store: write function panicked: %v", p)
		}
	}()
	return fn(tx)
}
