package router

import (
	"context"
	"errors"
	"sort"
	"time"

	"github.com/ternmesh/tern/bundle"
	"github.com/ternmesh/tern/router/policy"
	"github.com/ternmesh/tern/store"
	"github.com/ternmesh/tern/transports"
)

// Air spray. Summaries and grants never cross a radio one neighbour at a
// time (the 3 % control budget), so without this the copies of a bundle
// with no live route spread only over point-to-point contacts, and never
// reach handhelds that only pass by a LoRa relay. Instead, a node with a
// radio (a link that is a transports.BroadcastLink) holding an unrouted
// bundle (NextHop empty) with at least policy.AirSprayMin copies puts it
// on that radio once, as one broadcast every radio neighbour hears: the
// bundle with a grant note (bundle.AiredNote) giving each hearer share
// copies, where share, keep = policy.AirShare(copies, k) and k is the
// number of neighbours up on that radio. The sender keeps custody and
// keep copies. A hearer that lacks the bundle stores it with share copies
// and routes or sprays it like any bundle it holds (and airs it in turn if
// share is large enough), and sends no custody ack (custody did not move;
// k acks at once would collide on the air); one that holds it, or has
// seen it, drops it silently. Bulk data never goes on air (bulk.go), an
// encrypted bundle never on a clear-only radio, and each bundle is aired
// at most once per node (remembered in memory only: after a restart a
// bundle still unrouted with enough copies may be aired once more, which
// costs one frame and, at hearers, only duplicates). This is the
// simulator's model (router/meshsim, airSpray).

// maxAired bounds the IDs remembered as aired (dtnState.aired, a
// recentIDs whose addresses are unused): a radio at a 10 % duty cycle
// airs under a thousand 400-ms frames an hour, so this is most of a day.
const maxAired = 1 << 14

// airChannel is one radio this node broadcasts on.
type airChannel struct {
	l         transports.BroadcastLink // any of its links
	hearers   int                      // neighbours up on it
	clearOnly bool
}

// airChannels lists the radios with at least one neighbour up, most
// hearers first.
func (r *Router) airChannels() []airChannel {
	idx := map[any]int{}
	var out []airChannel
	for _, n := range r.neighbours() {
		n.mu.Lock()
		seen := map[any]bool{}
		for _, ls := range n.links {
			bl, ok := ls.l.(transports.BroadcastLink)
			if !ok || seen[bl.Channel()] {
				continue
			}
			ch := bl.Channel()
			seen[ch] = true
			i, ok := idx[ch]
			if !ok {
				i = len(out)
				idx[ch] = i
				out = append(out, airChannel{l: bl, clearOnly: transports.IsClearOnly(ls.l)})
			}
			out[i].hearers++
		}
		n.mu.Unlock()
	}
	sort.SliceStable(out, func(i, j int) bool { return out[i].hearers > out[j].hearers })
	return out
}

// airSpray broadcasts, once each, those of the unrouted bundles recs
// that qualify (see the top of this file). reroute calls it with what it
// read and left unrouted, so a bundle goes on air when it is stored
// unrouted, when a radio neighbour comes up, and at the latest one
// AnnounceInterval after either.
func (r *Router) airSpray(recs []store.Record) {
	var chans []airChannel
	now := r.cfg.Now()
	for _, rec := range recs {
		if rec.Copies < policy.AirSprayMin || rec.Dest == r.cfg.Self || r.dtn.aired.has(rec.ID) {
			continue
		}
		if chans == nil {
			if chans = r.airChannels(); len(chans) == 0 {
				return
			}
		}
		if r.airOne(rec, chans, now) {
			return // the radio queue is full or the router stops: next round
		}
	}
}

// airOne puts rec on the first radio that may carry it; stop reports a
// failure that later bundles would meet too.
func (r *Router) airOne(rec store.Record, chans []airChannel, now time.Time) (stop bool) {
	frame, c, err := r.prepare(rec, now)
	if err != nil || c.bulk {
		return false // expired (expireLoop drops it) or bulk: never on air
	}
	_, enc := classOf(c.kind, c.size)
	avail := r.dtn.avail(rec)
	for _, ch := range chans {
		if enc && ch.clearOnly {
			continue
		}
		share, keep := policy.AirShare(avail, ch.hearers)
		if share == 0 {
			return false
		}
		note, err := bundle.AiredNote(rec.ID, uint16(min(share, bundle.MaxCopies)))
		if err != nil {
			return false
		}
		ctx, cancel := context.WithTimeout(r.ctx, 10*time.Second)
		err = ch.l.Broadcast(ctx, note, frame)
		cancel()
		if errors.Is(err, transports.ErrTooBig) {
			// Larger than one air frame: never aired (it still sprays
			// on contacts).
			r.dtn.aired.put(rec.ID, bundle.Addr{})
			r.log.Debug("bundle too big to air", "bundle", rec.ID.String(), "err", err)
			return false
		}
		if err != nil {
			if r.ctx.Err() == nil {
				r.log.Debug("air spray not sent; trying again next round", "bundle", rec.ID.String(), "err", err)
			}
			return true
		}
		r.dtn.aired.put(rec.ID, bundle.Addr{})
		r.dtn.airSprays.Add(1)
		r.keepCopies(rec.ID, avail-keep)
		r.log.Debug("aired an unrouted bundle", "bundle", rec.ID.String(), "hearers", ch.hearers, "share", share, "kept", keep)
		return false
	}
	return false
}

// keepCopies takes given copies off id's budget, durably, keeping the
// record in whatever queue it is in now.
func (r *Router) keepCopies(id bundle.ID, given int) {
	r.dtn.copyMu.Lock()
	defer r.dtn.copyMu.Unlock()
	rec, err := r.cfg.Store.Get(id)
	if err != nil {
		return // delivered or expired meanwhile
	}
	left := max(int(rec.Copies)-given, 1)
	if err := r.cfg.Store.SetCopies(store.CopyUpdate{ID: id, Copies: uint16(left), NextHop: rec.NextHop}); err != nil && !errors.Is(err, store.ErrNotFound) {
		r.log.Error("updating the copy budget after an air spray failed", "bundle", id.String(), "err", err)
	}
}

// seenAired reports whether an aired bundle is no news here: held, aired
// or handed on before (cameBack does not apply: the sender kept custody,
// so nothing is lost by dropping it), or known delivered.
func (r *Router) seenAired(id bundle.ID) bool {
	if r.cfg.Store.Has(id) || r.dtn.aired.has(id) || r.origins.has(id) {
		return true
	}
	r.dtn.mu.Lock()
	defer r.dtn.mu.Unlock()
	_, ok := r.dtn.rcpt.set[id]
	return ok
}
