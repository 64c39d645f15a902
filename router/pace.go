package router

import (
	"time"

	"github.com/ternmesh/tern/bundle"
	"github.com/ternmesh/tern/router/policy"
	"github.com/ternmesh/tern/transports"
)

// Announces are paced per neighbour (issue 7, suppression of redundant
// rebroadcasts). While what this node would tell a neighbour stays the
// same, the periodic announce to it backs off (policy.Trickle): from
// AnnounceInterval, doubling after every unchanged announce, up to
// AnnounceMax. When it changes, the neighbour hears at once: a burst of
// changes (twenty) goes out as it comes, then at most one announce per
// AnnounceHold (a flapping link costs no more). A new link, a silent link
// that answers again and a neighbour that restarted get an announce at
// once, whatever the pace.
//
// AnnounceMax stays at most a third of minRouteLife, the shortest time any
// node keeps a learned route live without hearing it again: routes never
// expire at a neighbour because announces were suppressed, even when two
// in a row are lost.

// minRouteLife is the shortest LiveFor of any node's route table: a
// learned route stays live at least this long without a new announce.
const minRouteLife = time.Hour

// announceBurst is how many announces of changed routes a neighbour may
// get at once before AnnounceHold paces them (a burst of changes, as when
// a link comes up, is announced without delay).
const announceBurst = 20

// pacer decides when one neighbour gets an announce. Not safe for
// concurrent use: the neighbour's mu guards it.
type pacer struct {
	hold time.Duration
	// t paces announces whose content did not change since the last one.
	t policy.Trickle
	// changes paces announces of changed content: one per hold, after a
	// burst of announceBurst (a bucket refilled at one second a second).
	changes *policy.Budget
	sent    bool   // an announce of digest went
	digest  uint64 // what the last announce said (policy.Digest)
	// heldTo is when a change held back may go (zero: none held).
	heldTo time.Time
}

func newPacer(min, max, hold time.Duration) pacer {
	return pacer{hold: hold, t: policy.Trickle{Min: min, Max: max}, changes: policy.NewBudget(1, announceBurst*hold)}
}

// due reports whether an announce with content digest d should go now. A
// yes counts as sent; call unsent if it did not go.
func (p *pacer) due(now time.Time, d uint64) bool {
	if p.sent && d == p.digest {
		p.heldTo = time.Time{} // changed back before the held change went
		return p.t.Due(now, d)
	}
	if !p.changes.Allow(now, p.hold) {
		p.heldTo = now.Add(p.hold - p.changes.Left(now))
		return false
	}
	// New content: announce it, and back off again from Min.
	p.t = policy.Trickle{Min: p.t.Min, Max: p.t.Max}
	p.t.Due(now, d)
	p.sent, p.digest, p.heldTo = true, d, time.Time{}
	return true
}

// unsent records that the announce due allowed did not go: the next
// round (a route change, AnnounceInterval at the latest) tries again.
func (p *pacer) unsent() { p.sent = false }

// reset forgets what the neighbour was told: the next due says yes.
func (p *pacer) reset() { *p = newPacer(p.t.Min, p.t.Max, p.hold) }

// nextAt is when due should be asked again without a change (zero: only
// on a change).
func (p *pacer) nextAt() time.Time {
	if !p.heldTo.IsZero() {
		return p.heldTo
	}
	if !p.sent {
		return time.Time{}
	}
	return p.t.NextAt()
}

// announceMax is cfg.AnnounceMax within its bounds: at least
// AnnounceInterval, at most a third of minRouteLife unless
// AnnounceInterval itself is longer (then announces are not paced).
func announceMax(cfg Config) time.Duration {
	return max(cfg.AnnounceInterval, min(cfg.AnnounceMax, minRouteLife/3))
}

// announce sends neighbour n an announce over l when its pacer says one is
// due; force resets the pacer first, so one goes now (a new link, a
// neighbour that restarted).
func (r *Router) announce(n *neighbour, l transports.Link, now time.Time, force bool) {
	limit := 0
	if isRadio(l) {
		limit = radioAnnounceRoutes
	}
	routes := r.table.advertise(n.addr, limit)
	d := policy.Digest(routes)
	n.mu.Lock()
	if force {
		n.pace.reset()
	}
	due := n.pace.due(now, d)
	n.mu.Unlock()
	if !due {
		return
	}
	if err := r.sendAnnounce(n.addr, l, routes); err != nil {
		n.mu.Lock()
		n.pace.unsent()
		n.mu.Unlock()
		if r.ctx.Err() == nil {
			r.log.Debug("announce not sent", "neighbour", addrString(n.addr), "err", err)
		}
	}
}

// announceAll offers every neighbour with a link an announce (pacer
// permitting).
func (r *Router) announceAll(now time.Time) {
	for _, n := range r.neighbours() {
		if l := n.link(); l != nil {
			r.announce(n, l, now, false)
		}
	}
}

// paceAt is the earliest time a neighbour with a link is due an announce
// without a change, or zero.
func (r *Router) paceAt() time.Time {
	var at time.Time
	for _, n := range r.neighbours() {
		n.mu.Lock()
		next := n.pace.nextAt()
		up := len(n.links) > 0
		n.mu.Unlock()
		if up && !next.IsZero() {
			at = earliest(at, next)
		}
	}
	return at
}

// restarted records the sequence number of an announce from n and
// reports whether it went back: n restarted (its counter starts again at
// 1) and lost what it had learned from us.
func (n *neighbour) restarted(seq uint64) bool {
	n.mu.Lock()
	defer n.mu.Unlock()
	back := n.lastSeq != 0 && seq <= n.lastSeq
	n.lastSeq = seq
	return back
}

// sendAnnounce sends routes to neighbour to over l.
func (r *Router) sendAnnounce(to bundle.Addr, l transports.Link, routes []bundle.Route) error {
	r.mu.Lock()
	r.announceSeq++
	seq := r.announceSeq
	r.mu.Unlock()
	payload, err := (&bundle.Announce{Seq: seq, Routes: routes}).Marshal()
	if err != nil {
		return err
	}
	return r.sendControl(l, to, bundle.KindAnnounce, payload)
}
