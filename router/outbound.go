package router

import (
	"context"
	"errors"
	"sync"
	"time"

	"github.com/ternmesh/tern/bundle"
	"github.com/ternmesh/tern/store"
	"github.com/ternmesh/tern/transports"
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
// (zero when nothing is in flight): the bundles queued for n in the store,
// then the copies decided for it on contact. Bundles that carry a copy
// budget are announced first with one grant note per link.
func (r *Router) sendPending(n *neighbour) time.Time {
	if n.link() == nil {
		return time.Time{}
	}
	n.mu.Lock()
	gen := n.ackGen // acks applied before the queue is read
	n.mu.Unlock()
	recs, err := r.cfg.Store.ForNextHop(n.addr, r.cfg.Window)
	if err != nil {
		r.log.Error("reading queue failed", "neighbour", addrString(n.addr), "err", err)
		return r.cfg.Now().Add(r.cfg.RetryMin)
	}
	queued := make(map[bundle.ID]bool, len(recs))
	for _, rec := range recs {
		queued[rec.ID] = true
	}
	nq := len(recs)
	recs = append(recs, r.sprayRecords(n, queued)...)
	now := r.cfg.Now()
	var next time.Time
	var expired []bundle.ID
	moved := map[bundle.Addr][]bundle.ID{}
	type out struct {
		rec   store.Record
		frame []byte
		l     transports.Link
		f     *flight
		grant uint16
		spray bool
		judge bool
	}
	var due []out
	for i, rec := range recs {
		spray := i >= nq
		n.mu.Lock()
		f := n.inflight[rec.ID]
		var deadline time.Time
		if f != nil {
			deadline = f.deadline // onAck and heard write it under n.mu
		}
		outdated := n.ackedSince(rec.ID, f, gen)
		n.mu.Unlock()
		if outdated {
			// Its store update is under way (onAck), or was made after
			// recs was read: rec is out of date (a copy budget already
			// given, a record already released). onAck wakes n, and the
			// next pass reads it afresh.
			continue
		}
		if f != nil && now.Before(deadline) {
			next = earliest(next, deadline)
			continue
		}
		frame, c, err := r.prepare(rec, now)
		if err != nil {
			expired = append(expired, rec.ID)
			continue
		}
		if f != nil && f.link != nil && n.markSilent(f.link) {
			r.log.Warn("no custody ack over a link; resending over another", "neighbour", addrString(n.addr), "remote", f.link.Peer().Remote, "bundle", rec.ID.String())
		}
		l := n.linkFor(c)
		if spray && (l == nil || isRadio(l)) {
			r.dropSpray(n, rec.ID) // copies never go on air; decided again next contact
			continue
		}
		if l == nil {
			// No link to n may carry it now: an encrypted bundle and only
			// clear-only links, bulk data and only radios (bulk.go), or a
			// radio low on airtime. Another neighbour may; else it waits
			// here and is tried again.
			if nh, _, ok := r.route(rec.Dest, rec.From, c); ok && nh != n.addr && r.isUp(nh) {
				moved[nh] = append(moved[nh], rec.ID)
			} else {
				next = earliest(next, now.Add(r.cfg.RetryMin))
			}
			continue
		}
		o := out{rec: rec, frame: frame, l: l, f: f, spray: spray}
		if f != nil {
			o.grant = f.grant // a resend keeps the budget it was given
		} else if spray {
			n.mu.Lock()
			o.grant = n.sprays[rec.ID]
			n.mu.Unlock()
		} else if rec.Dest != n.addr && !isRadio(l) {
			// Judge only hand-overs on a live route over a link that
			// receipts come back on; keep a hedge only then too.
			via, live, _ := r.route(rec.Dest, rec.From, c)
			o.judge = live && via == n.addr
			o.grant = r.grantFor(n, rec, false, o.judge)
		} else {
			o.grant = r.grantFor(n, rec, isRadio(l), false)
		}
		due = append(due, o)
	}
	// Grants go ahead of their bundles, on the link each bundle takes.
	n.mu.Lock()
	speaks := n.speaks
	n.mu.Unlock()
	if speaks {
		byLink := map[transports.Link][]bundle.Grant{}
		for _, o := range due {
			if o.grant > 0 && !isRadio(o.l) {
				byLink[o.l] = append(byLink[o.l], bundle.Grant{ID: o.rec.ID, Copies: o.grant})
			}
		}
		for l, gs := range byLink {
			for len(gs) > 0 {
				k := min(len(gs), bundle.MaxSummaryGrants)
				p, err := (&bundle.Summary{Grants: gs[:k]}).Marshal()
				gs = gs[k:]
				if err == nil {
					err = r.sendControl(l, n.addr, bundle.KindSummary, p)
				}
				if err != nil && r.ctx.Err() == nil {
					r.log.Debug("grant note not sent; copies go as plain custody", "neighbour", addrString(n.addr), "err", err)
				}
			}
		}
	}
	// Silent links are probed while they are silent: the answer moves
	// traffic back to them (linkState.silent).
	// Only to neighbours that speak summaries (older nodes reject them);
	// for the others the link's own idle timeout decides.
	for _, l := range n.dueProbes(now.Add(-r.cfg.RetryMin), now) {
		if speaks {
			r.sendEcho(n, l, bundle.SummaryEcho)
		}
	}
	if speaks && n.hasSilent() {
		next = earliest(next, now.Add(r.cfg.RetryMin))
	}
	for _, o := range due {
		// In flight before it leaves: its custody ack may come back
		// before Send returns.
		n.mu.Lock()
		f := n.inflight[o.rec.ID]
		if n.ackedSince(o.rec.ID, f, gen) {
			n.mu.Unlock()
			continue // acknowledged since recs was read (see above)
		}
		if f == nil {
			f = &flight{local: o.rec.From == (bundle.Addr{}), grant: o.grant, spray: o.spray, judge: o.judge, dest: o.rec.Dest}
			n.inflight[o.rec.ID] = f
		}
		f.attempts++
		f.medium, f.link = transports.MediumOf(o.l), o.l
		f.deadline = now.Add(r.backoff(f.attempts))
		next = earliest(next, f.deadline)
		n.mu.Unlock()
		queued[o.rec.ID] = true
		ctx, cancel := context.WithTimeout(r.ctx, 30*time.Second)
		err := o.l.Send(ctx, o.frame)
		cancel()
		if err != nil {
			if r.ctx.Err() == nil {
				r.log.Warn("send failed; will retry", "neighbour", addrString(n.addr), "err", err)
			}
			next = earliest(next, now.Add(r.cfg.RetryMin))
			break
		}
		r.m.add(n.addr, func(c *counters) *atomicU64 { return &c.out })
	}
	// Forget flights whose bundles left the queue another way (expired,
	// rerouted, cleared by a receipt) so the map stays bounded, and the
	// acks applied before recs was read (it is up to date for them).
	n.mu.Lock()
	if nq < r.cfg.Window {
		for id := range n.inflight {
			if _, spray := n.sprays[id]; !queued[id] && !spray {
				delete(n.inflight, id)
			}
		}
	}
	for id, g := range n.settled {
		if g <= gen {
			delete(n.settled, id)
		}
	}
	n.mu.Unlock()
	if len(expired) > 0 {
		r.dropExpired(expired)
	}
	r.moveTo(moved)
	return next
}

// sprayRecords loads the records of the copies decided for n that are not
// in its queue anyway; copies of bundles no longer held are forgotten.
func (r *Router) sprayRecords(n *neighbour, queued map[bundle.ID]bool) []store.Record {
	n.mu.Lock()
	ids := make([]bundle.ID, 0, len(n.sprays))
	for id := range n.sprays {
		ids = append(ids, id)
	}
	n.mu.Unlock()
	var out []store.Record
	for _, id := range ids {
		rec, err := r.cfg.Store.Get(id)
		if err != nil || queued[id] {
			r.dropSpray(n, id)
			continue
		}
		out = append(out, rec)
	}
	return out
}

// dropSpray forgets a copy decided for n and frees its promised budget.
func (r *Router) dropSpray(n *neighbour, id bundle.ID) {
	n.mu.Lock()
	g, ok := n.sprays[id]
	delete(n.sprays, id)
	if f := n.inflight[id]; f != nil && f.spray {
		delete(n.inflight, id)
	}
	n.mu.Unlock()
	if ok {
		r.dtn.unreserve(id, int(g))
	}
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
func (r *Router) prepare(rec store.Record, now time.Time) ([]byte, cargo, error) {
	b, err := bundle.Unmarshal(rec.Raw)
	if err != nil {
		return nil, cargo{}, err
	}
	held := time.Duration(max(now.UnixMilli()-rec.Received, 0)) * time.Millisecond
	aged, err := b.Aged(held)
	if err != nil {
		return nil, cargo{}, err
	}
	raw, err := aged.Marshal()
	return raw, cargoOfBundle(b, len(raw)), err
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
			r.delivered(ids)
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
		err = r.cfg.Deliver(r.withLastHop(rec.From, b.Kind), b)
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
