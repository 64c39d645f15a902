package router

import (
	"context"
	"errors"
	"sync"
	"time"

	"github.com/ternmesh/tern/bundle"
	"github.com/ternmesh/tern/store"
)

// sendLoop drains this neighbour's queue in the store while a link is up.
// A bundle stays in flight until its custody ack arrives; if none comes
// before the deadline it is sent again with exponential backoff.
func (r *Router) sendLoop(n *neighbour) {
	defer r.wg.Done()
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	for {
		select {
		case <-r.ctx.Done():
			return
		case <-n.wake:
		case <-timer.C:
		}
		next := r.sendPending(n)
		if !timer.Stop() {
			select {
			case <-timer.C:
			default:
			}
		}
		if !next.IsZero() {
			timer.Reset(max(next.Sub(r.cfg.Now()), time.Millisecond))
		}
	}
}

// sendPending sends what is due and returns when the next retry falls due
// (zero when nothing is in flight).
func (r *Router) sendPending(n *neighbour) time.Time {
	if n.link() == nil {
		return time.Time{}
	}
	recs, err := r.cfg.Store.ForNextHop(n.addr, r.cfg.Window)
	if err != nil {
		r.log.Error("reading queue failed", "neighbour", addrString(n.addr), "err", err)
		return r.cfg.Now().Add(r.cfg.RetryMin)
	}
	now := r.cfg.Now()
	var next time.Time
	var expired []bundle.ID
	queued := make(map[bundle.ID]bool, len(recs))
	for _, rec := range recs {
		queued[rec.ID] = true
		n.mu.Lock()
		f := n.inflight[rec.ID]
		n.mu.Unlock()
		if f != nil && now.Before(f.deadline) {
			next = earliest(next, f.deadline)
			continue
		}
		frame, kind, flags, err := r.prepare(rec, now)
		if err != nil {
			expired = append(expired, rec.ID)
			continue
		}
		l := n.linkFor(kind, flags)
		if l == nil {
			// Only clear-only links to this neighbour: an encrypted
			// bundle never goes there (nor a bulk one on radio: bulk.go).
			// It waits; reroute finds another way.
			continue
		}
		ctx, cancel := context.WithTimeout(r.ctx, 30*time.Second)
		err = l.Send(ctx, frame)
		cancel()
		if err != nil {
			if r.ctx.Err() == nil {
				r.log.Warn("send failed; will retry", "neighbour", addrString(n.addr), "err", err)
			}
			return earliest(next, now.Add(r.cfg.RetryMin))
		}
		r.m.add(n.addr, func(c *counters) *atomicU64 { return &c.out })
		n.mu.Lock()
		if f == nil {
			f = &flight{local: rec.From == (bundle.Addr{})}
			n.inflight[rec.ID] = f
		}
		f.attempts++
		f.deadline = now.Add(r.backoff(f.attempts))
		next = earliest(next, f.deadline)
		n.mu.Unlock()
	}
	// Forget flights whose bundles left the queue another way (expired,
	// rerouted) so the map stays bounded.
	if len(recs) < r.cfg.Window {
		n.mu.Lock()
		for id := range n.inflight {
			if !queued[id] {
				delete(n.inflight, id)
			}
		}
		n.mu.Unlock()
	}
	if len(expired) > 0 {
		r.dropExpired(expired)
	}
	return next
}

func (r *Router) dropExpired(ids []bundle.ID) {
	if err := r.cfg.Store.Delete(ids...); err != nil {
		r.log.Error("dropping expired bundles failed", "err", err)
		return
	}
	r.m.total.expired.Add(uint64(len(ids)))
}

// prepare re-encodes a stored bundle for the next hop: age advanced by the
// time held here, hop limit decremented.
func (r *Router) prepare(rec store.Record, now time.Time) ([]byte, bundle.Kind, bundle.Flags, error) {
	b, err := bundle.Unmarshal(rec.Raw)
	if err != nil {
		return nil, 0, 0, err
	}
	held := time.Duration(max(now.UnixMilli()-rec.Received, 0)) * time.Millisecond
	aged, err := b.Aged(held)
	if err != nil {
		return nil, 0, 0, err
	}
	raw, err := aged.Marshal()
	return raw, b.Kind, b.Flags, err
}

func (r *Router) backoff(attempt int) time.Duration {
	d := r.cfg.RetryMin
	for i := 1; i < attempt && d < r.cfg.RetryMax; i++ {
		d *= 2
	}
	return min(d, r.cfg.RetryMax)
}

func earliest(a, b time.Time) time.Time {
	if a.IsZero() || b.Before(a) {
		return b
	}
	return a
}

// localLoop delivers bundles addressed to this node to the applications.
// It works from the store, so a crash between custody ack and delivery
// only delays delivery to the next start.
func (r *Router) localLoop() {
	defer r.wg.Done()
	retry := time.NewTimer(time.Hour)
	defer retry.Stop()
	for {
		select {
		case <-r.ctx.Done():
			return
		case <-r.localWake:
		case <-retry.C:
		}
		if r.deliverPending() {
			retry.Reset(r.cfg.RetryMin)
		}
	}
}

// localWorkers is how many bundles are delivered to the applications at
// once. Each delivery makes a few durable writes; running several together
// lets the store group-commit them instead of paying one fsync after another.
const localWorkers = 16

// deliverPending hands stored local bundles to Deliver; it reports whether
// some must be retried.
func (r *Router) deliverPending() (again bool) {
	for {
		recs, err := r.cfg.Store.ForNextHop(r.cfg.Self, 256)
		if err != nil {
			r.log.Error("reading local queue failed", "err", err)
			return true
		}
		if len(recs) == 0 {
			return false
		}
		done := make([]bool, len(recs))
		work := make(chan int)
		var wg sync.WaitGroup
		for range min(localWorkers, len(recs)) {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := range work {
					done[i] = r.deliverOne(recs[i])
				}
			}()
		}
		for i := range recs {
			work <- i
		}
		close(work)
		wg.Wait()
		var ids []bundle.ID
		for i, ok := range done {
			if ok {
				ids = append(ids, recs[i].ID)
			} else {
				again = true
			}
		}
		if len(ids) > 0 {
			if err := r.cfg.Store.Delete(ids...); err != nil {
				r.log.Error("clearing delivered bundles failed", "err", err)
				return true
			}
		}
		if again || len(recs) < 256 {
			return again
		}
	}
}

// deliverOne delivers one stored bundle and reports whether it is finished
// with (delivered, or rejected for good).
func (r *Router) deliverOne(rec store.Record) bool {
	b, err := bundle.Unmarshal(rec.Raw)
	if err == nil {
		err = r.cfg.Deliver(r.ctx, b)
	}
	switch {
	case err == nil:
		r.m.add(rec.From, func(c *counters) *atomicU64 { return &c.delivered })
		return true
	case errors.Is(err, ErrRejected) || errors.Is(err, bundle.ErrMalformed):
		reason := "rejected"
		var re interface{ Reason() string }
		if errors.As(err, &re) {
			reason = re.Reason()
		}
		r.m.reject(rec.From, reason)
		r.log.Warn("rejected bundle addressed to us", "bundle", rec.ID.String(), "from_neighbour", addrString(rec.From), "err", err)
		return true
	default:
		if r.ctx.Err() == nil {
			r.log.Error("local delivery failed; will retry", "bundle", rec.ID.String(), "err", err)
		}
		return false
	}
}
