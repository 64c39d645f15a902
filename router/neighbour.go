package router

import (
	"context"
	"errors"
	"sync"
	"time"

	"github.com/ternmesh/tern/bundle"
	"github.com/ternmesh/tern/router/policy"
	"github.com/ternmesh/tern/store"
	"github.com/ternmesh/tern/transports"
)

// neighbour is one directly connected node and the links to it. Its sender
// goroutine drains the store's queue for this next hop over the best live
// link, keeping at most Window bundles in flight until custody acks return.
type neighbour struct {
	addr bundle.Addr
	wake chan struct{}

	mu       sync.Mutex
	links    []*linkState
	inflight map[bundle.ID]*flight
	// ackGen counts the custody acks applied (onAck); settled holds, for
	// each bundle whose flight an ack ended since the sender last read
	// the queue, the ackGen then. A queue read before that may still list
	// the bundle as it was before the ack (its copies given, or released):
	// the sender must not send it again from that stale record
	// (sendPending).
	ackGen  uint64
	settled map[bundle.ID]uint64
	// speaks is set once the neighbour sent a summary: it understands
	// summaries (older nodes reject them), so notes and grants may go to it.
	speaks bool
	// sprays are copies of delay-tolerant bundles to hand over, with the
	// budget each carries (decided on contact, dtn.go). Forgotten when the
	// neighbour goes away: the next contact decides again.
	sprays map[bundle.ID]uint16
	// rcptSent is how far into the receipt log notes to it have gone.
	rcptSent uint64
	// pace decides when it next gets an announce (pace.go); lastSeq is the
	// sequence number of the last announce heard from it.
	pace    pacer
	lastSeq uint64
}

type linkState struct {
	l     transports.Link
	since time.Time
	// silent is set when a custody ack did not come back over this link
	// while the neighbour has another one. A path that dies without
	// closing (the Wi-Fi or the internet gone, packets dropped) looks up
	// until its idle timeout, so retries take the next link at once rather
	// than waiting for that. Any frame heard on the link clears it; its
	// control traffic (announces, summaries) keeps probing it meanwhile.
	silent bool
	probed time.Time // when an echo request last went over it (silent only)
}

// flight is a bundle sent to this neighbour and not yet acknowledged.
type flight struct {
	deadline time.Time
	attempts int
	local    bool        // originated here: report "forwarded" on ack
	medium   string      // transports.MediumOf the link it last went on
	grant    uint16      // copies handed over with it (0: plain custody)
	spray    bool        // a copy: the record stays here with the rest
	judge    bool        // handed on a live route: a receipt should follow
	dest     bundle.Addr // the bundle's destination
	// acked is set while the custody ack is applied to the store, so the
	// sender neither resends nor forgets it meanwhile.
	acked bool
	// link is the link it last went on.
	link transports.Link
}

func (n *neighbour) up() bool {
	n.mu.Lock()
	defer n.mu.Unlock()
	return len(n.links) > 0
}

// link returns the link to send control traffic on: the newest link that
// is not a radio, else the newest.
func (n *neighbour) link() transports.Link {
	n.mu.Lock()
	defer n.mu.Unlock()
	for i := len(n.links) - 1; i >= 0; i-- {
		if !isRadio(n.links[i].l) {
			return n.links[i].l
		}
	}
	if len(n.links) == 0 {
		return nil
	}
	return n.links[len(n.links)-1].l
}

// summaryLink returns the newest link that is not a radio, or nil:
// summaries never go on air, where the 3 % control budget could not carry
// them.
func (n *neighbour) summaryLink() transports.Link {
	l := n.link()
	if l == nil || isRadio(l) {
		return nil
	}
	return l
}

// linkFor returns the link to carry a bundle of kind k and size bytes: the
// cheapest by policy.Cost among those that may carry its class (policy.Choose:
// an end-to-end encrypted data bundle never goes on a clear-only link; bulk
// stays off a radio whose airtime budget is below half; nothing goes on a
// radio whose budget is spent; signed plaintext and hop-by-hop control go
// on any) and whose MTU fits it. Cost is latency plus serialisation at the
// link's rate, inflated by its loss: a neighbour seen on the LAN and over
// the internet is reached over the LAN, and a wired link beats a radio.
// Ties go to the newest link. When the chosen link dies the next one takes
// over, and custody resends what was in flight. nil: no link may carry it
// now. Bulk data (bundle.FlagBulk) never goes on a radio (bulk.go).
func (n *neighbour) linkFor(c cargo) transports.Link {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.chooseLocked(c)
}

func (n *neighbour) chooseLocked(c cargo) transports.Link {
	if l := n.chooseAmong(c, false); l != nil {
		return l
	}
	return n.chooseAmong(c, true) // every usable link is silent: try them anyway
}

// chooseAmong is chooseLocked over the links that are not silent, or over
// all of them.
func (n *neighbour) chooseAmong(c cargo, silentToo bool) transports.Link {
	class, enc := classOf(c.kind, c.size)
	size := c.size
	if len(n.links) == 1 { // the common case, without building slices
		l := n.links[0].l
		if _, ok := policy.Cost(linkMetrics(l), class, size, enc); ok && l.MTU() >= size && !(c.bulk && isRadio(l)) {
			return l
		}
		return nil
	}
	ms := make([]policy.LinkMetrics, 0, len(n.links))
	ls := make([]transports.Link, 0, len(n.links))
	for i := len(n.links) - 1; i >= 0; i-- { // newest first: ties go to it
		l := n.links[i].l
		if l.MTU() < size || n.links[i].silent && !silentToo || c.bulk && isRadio(l) {
			continue
		}
		ms, ls = append(ms, linkMetrics(l)), append(ls, l)
	}
	if i := policy.Choose(ms, nil, class, size, enc); i >= 0 {
		return ls[i]
	}
	return nil
}

// markSilent records that a custody ack sent over l is overdue: while n
// has another link, bundles take that one (see linkState.silent). It
// reports whether the mark is new.
func (n *neighbour) markSilent(l transports.Link) bool {
	n.mu.Lock()
	defer n.mu.Unlock()
	if len(n.links) < 2 {
		return false
	}
	for _, ls := range n.links {
		if ls.l == l && !ls.silent {
			ls.silent = true
			return true
		}
	}
	return false
}

// dueProbes returns the silent links not probed since before, and marks
// them probed at now.
func (n *neighbour) dueProbes(before, now time.Time) []transports.Link {
	n.mu.Lock()
	defer n.mu.Unlock()
	var out []transports.Link
	for _, ls := range n.links {
		if ls.silent && ls.probed.Before(before) {
			ls.probed = now
			out = append(out, ls.l)
		}
	}
	return out
}

// heard clears l's silent mark; it reports whether there was one.
func (n *neighbour) heard(l transports.Link) bool {
	n.mu.Lock()
	defer n.mu.Unlock()
	for _, ls := range n.links {
		if ls.l == l && ls.silent {
			ls.silent = false
			for _, f := range n.inflight {
				f.deadline = time.Time{} // back on the better link at once
			}
			return true
		}
	}
	return false
}

// usable reports whether n is up with a link that may carry c now.
func (n *neighbour) usable(c cargo) bool {
	n.mu.Lock()
	defer n.mu.Unlock()
	return len(n.links) > 0 && n.chooseLocked(c) != nil
}

// units is what a hop to n adds to a route metric: that of its cheapest
// link (linkUnits); 0 when no link is up.
func (n *neighbour) units() uint8 {
	n.mu.Lock()
	defer n.mu.Unlock()
	var u uint8
	for _, ls := range n.links {
		if lu := linkUnits(linkMetrics(ls.l)); u == 0 || lu < u {
			u = lu
		}
	}
	return u
}

// clearOnly reports whether every link now up to n forbids encryption.
func (n *neighbour) clearOnly() bool {
	n.mu.Lock()
	defer n.mu.Unlock()
	if len(n.links) == 0 {
		return false
	}
	for _, ls := range n.links {
		if !transports.IsClearOnly(ls.l) {
			return false
		}
	}
	return true
}

func (n *neighbour) closeLinks() {
	n.mu.Lock()
	ls := append([]*linkState(nil), n.links...)
	n.mu.Unlock()
	for _, ls := range ls {
		ls.l.Close()
	}
}

// AddLink attaches an open link. The router reads from it, sends over it,
// and forgets it when it closes. The neighbour is the link's Peer().Addr.
// The returned channel is closed once the router has let go of the link.
func (r *Router) AddLink(l transports.Link) <-chan struct{} {
	gone := make(chan struct{})
	p := l.Peer()
	now := r.cfg.Now()
	r.mu.Lock()
	n := r.nbrs[p.Addr]
	if n == nil {
		n = &neighbour{addr: p.Addr, wake: make(chan struct{}, 1), inflight: map[bundle.ID]*flight{}, settled: map[bundle.ID]uint64{}, sprays: map[bundle.ID]uint16{},
			pace: newPacer(r.cfg.AnnounceInterval, r.cfg.AnnounceMax, r.cfg.AnnounceHold)}
		r.nbrs[p.Addr] = n
		r.wg.Add(1)
		go r.sendLoop(n)
	}
	r.mu.Unlock()
	n.mu.Lock()
	n.links = append(n.links, &linkState{l: l, since: now})
	n.lastSeq = 0 // it announces afresh on a new link (restarted or not)
	for _, f := range n.inflight {
		f.deadline = time.Time{} // resend at once over the new link
	}
	n.mu.Unlock()
	units := n.units()
	r.log.Info("link up", "neighbour", addrString(p.Addr), "remote", p.Remote, "authenticated", p.Authenticated, "units", units)
	r.table.neighbourUp(p.Addr, units, now)
	r.announce(n, l, now, true) // a new link hears at once, whatever the pace
	if !isRadio(l) {
		r.sendSummary(n, true) // what we hold and know delivered: the contact
	}
	r.routesChanged()
	wake(n.wake)

	r.startVoice(n, l) // voice datagrams, when l carries them (voice.go)
	frames := make(chan []byte, 1024)
	r.wg.Add(2)
	go func() {
		defer r.wg.Done()
		defer close(frames)
		for {
			f, err := l.Recv(r.ctx)
			if err != nil {
				if !errors.Is(err, transports.ErrClosed) && r.ctx.Err() == nil {
					r.log.Warn("link receive failed", "neighbour", addrString(p.Addr), "remote", p.Remote, "err", err)
				}
				return
			}
			select {
			case frames <- f:
			case <-r.ctx.Done():
				return
			}
		}
	}()
	go func() {
		defer r.wg.Done()
		r.processFrames(n, l, frames)
		l.Close()
		r.dropLink(n, l)
		close(gone)
	}()
	return gone
}

// ackedSince reports whether a custody ack for bundle id, whose flight is
// f (nil: none), is applied or under way since acks numbered gen: a queue
// record read at gen is then out of date for it. Called with n.mu held.
func (n *neighbour) ackedSince(id bundle.ID, f *flight, gen uint64) bool {
	if f != nil {
		return f.acked
	}
	return n.settled[id] > gen
}

func (r *Router) dropLink(n *neighbour, l transports.Link) {
	n.mu.Lock()
	for i, ls := range n.links {
		if ls.l == l {
			n.links = append(n.links[:i], n.links[i+1:]...)
			break
		}
	}
	left := len(n.links)
	for _, f := range n.inflight {
		f.deadline = time.Time{}
	}
	n.mu.Unlock()
	r.log.Info("link down", "neighbour", addrString(n.addr), "remote", l.Peer().Remote, "links_left", left)
	if left == 0 {
		r.table.neighbourDown(n.addr, r.cfg.Now())
		n.mu.Lock()
		sprays := n.sprays
		n.sprays = map[bundle.ID]uint16{}
		n.mu.Unlock()
		for id, g := range sprays {
			r.dtn.unreserve(id, int(g)) // the next contact decides again
		}
	} else {
		r.table.neighbourUp(n.addr, n.units(), r.cfg.Now()) // its cheapest link may be gone
	}
	r.routesChanged()
}

// processFrames handles frames from one link in batches, so that a burst of
// bundles costs one group-committed store write and one custody ack.
func (r *Router) processFrames(n *neighbour, l transports.Link, frames <-chan []byte) {
	batch := make([][]byte, 0, 512)
	for f := range frames {
		batch = append(batch[:0], f)
	more:
		for len(batch) < cap(batch) {
			select {
			case f, ok := <-frames:
				if !ok {
					break more
				}
				batch = append(batch, f)
			default:
				break more
			}
		}
		r.handleBatch(n, l, batch)
		// Everything the batch needed is now on disk or copied: recycle
		// the receive buffers (bulk transfers would otherwise allocate a
		// buffer per bundle).
		if rl, ok := l.(transports.ReleaseLink); ok {
			for _, f := range batch {
				rl.Release(f)
			}
		}
	}
}

func (r *Router) handleBatch(n *neighbour, l transports.Link, frames [][]byte) {
	now := r.cfg.Now()
	radio := isRadio(l)
	if n.heard(l) {
		r.log.Info("link answers again; bundles may take it", "neighbour", addrString(n.addr), "remote", l.Peer().Remote)
		wake(n.wake)
		// Announces sent while it was silent may be lost.
		if cl := n.link(); cl != nil {
			r.announce(n, cl, now, true)
		}
	}
	var recs []store.Record
	var acks, acked []bundle.ID
	noAck := map[bundle.ID]bool{} // aired bundles stored or refused here
	for _, f := range frames {
		b, err := bundle.Unmarshal(f)
		if err != nil {
			r.m.reject(n.addr, "malformed")
			r.log.Warn("dropped malformed bundle from neighbour", "neighbour", addrString(n.addr), "err", err)
			continue
		}
		switch b.Kind {
		case bundle.KindCustodyAck:
			ids, err := bundle.UnmarshalCustodyAck(b.Payload)
			if err != nil {
				r.m.reject(n.addr, "malformed")
				continue
			}
			acked = append(acked, ids...)
			continue
		case bundle.KindAnnounce:
			a, err := bundle.UnmarshalAnnounce(b.Payload)
			if err != nil {
				r.m.reject(n.addr, "malformed")
				continue
			}
			if r.table.learn(n.addr, n.units(), a.Routes, now) {
				r.routesChanged()
			}
			if n.restarted(a.Seq) {
				// It lost what we told it: tell it all again now, not
				// when the backed-off pace says.
				r.log.Info("neighbour restarted; announcing to it again", "neighbour", addrString(n.addr), "seq", a.Seq)
				if cl := n.link(); cl != nil {
					r.announce(n, cl, now, true)
				}
			}
			continue
		case bundle.KindSummary:
			s, err := bundle.UnmarshalSummary(b.Payload)
			if err != nil {
				r.m.reject(n.addr, "malformed")
				r.log.Warn("dropped malformed summary from neighbour", "neighbour", addrString(n.addr), "err", err)
				continue
			}
			r.onSummary(n, l, s, now)
			continue
		}
		r.m.add(n.addr, func(c *counters) *atomicU64 { return &c.in })
		if !r.ingress.allow(n.addr, radio, now) {
			// Over this neighbour's rate: no custody ack, so it keeps the
			// bundle and sends it again later.
			r.m.add(n.addr, func(c *counters) *atomicU64 { return &c.rateLimited })
			r.m.reject(n.addr, "rate-limited")
			if r.table.refused(n.addr, now) {
				// Its routes now carry the full penalty (table.penaltyOf):
				// move what waits off them, as for a reputation change.
				r.log.Warn("neighbour floods past its ingress limit", "neighbour", addrString(n.addr), "radio", radio,
					"action", "routing round it until it has been quiet for 10 minutes")
				r.routesChanged()
			}
			continue
		}
		rem := b.Remaining(0)
		// An aired bundle (a radio broadcast, air.go) is never
		// acknowledged: custody stays with its sender.
		copies, aired := r.dtn.takeGrant(n.addr, b.ID)
		ack := func() {
			if !aired {
				acks = append(acks, b.ID)
			}
		}
		switch {
		case rem <= 0:
			r.m.add(n.addr, func(c *counters) *atomicU64 { return &c.expired })
			ack()
			continue
		case aired && r.seenAired(b.ID), !aired && r.cfg.Store.Has(b.ID) && !r.cameBack(b, n.addr):
			r.m.add(n.addr, func(c *counters) *atomicU64 { return &c.duplicate })
			ack()
			continue
		case b.Dest != r.cfg.Self && b.HopLimit == 0:
			r.m.reject(n.addr, "hop-limit")
			ack()
			continue
		}
		rec := store.Record{
			ID: b.ID, Dest: b.Dest, From: n.addr, Raw: f,
			Received: now.UnixMilli(), Expires: now.Add(rem).UnixMilli(),
			Readmit: b.Dest != r.cfg.Self, // only a bundle that cameBack gets here seen
			Copies:  copies,
		}
		if aired {
			noAck[b.ID] = true
		}
		if b.Dest == r.cfg.Self {
			rec.NextHop, rec.Copies = r.cfg.Self, 0
		} else {
			rec.NextHop, _, _ = r.route(b.Dest, n.addr, cargoOfBundle(b, len(f)))
		}
		recs = append(recs, rec)
	}
	if len(acked) > 0 {
		r.onAck(n, acked)
	}
	if len(recs) > 0 {
		hops := map[bundle.Addr]bool{}
		for i, err := range r.cfg.Store.Put(recs...) {
			switch {
			case err == nil:
				r.m.add(n.addr, func(c *counters) *atomicU64 { return &c.stored })
				if !noAck[recs[i].ID] {
					acks = append(acks, recs[i].ID)
				}
				hops[recs[i].NextHop] = true
				r.origins.put(recs[i].ID, n.addr)
			case errors.Is(err, store.ErrDuplicate):
				r.m.add(n.addr, func(c *counters) *atomicU64 { return &c.duplicate })
				if !noAck[recs[i].ID] {
					acks = append(acks, recs[i].ID)
				}
			default:
				// Not acknowledged: the neighbour keeps custody and retries.
				reason := "store"
				if errors.Is(err, store.ErrQuota) {
					reason = "quota"
				}
				r.m.reject(n.addr, reason)
				r.log.Warn("cannot take bundle into custody", "neighbour", addrString(n.addr), "bundle", recs[i].ID.String(), "err", err)
			}
		}
		for h := range hops {
			r.wakeHop(h)
		}
		if hops[bundle.Addr{}] {
			wake(r.unrouted) // see announceLoop: route them again once on disk
		}
	}
	r.sendAcks(n.addr, l, acks)
}

// sendAcks tells the neighbour which bundles are now safe on our disk.
func (r *Router) sendAcks(to bundle.Addr, l transports.Link, ids []bundle.ID) {
	seen := make(map[bundle.ID]bool, len(ids))
	uniq := ids[:0]
	for _, id := range ids {
		if !seen[id] {
			seen[id] = true
			uniq = append(uniq, id)
		}
	}
	ids = uniq
	for len(ids) > 0 {
		k := min(len(ids), bundle.MaxCustodyAckIDs)
		payload, err := bundle.MarshalCustodyAck(ids[:k])
		ids = ids[k:]
		if err == nil {
			err = r.sendControl(l, to, bundle.KindCustodyAck, payload)
		}
		if err != nil && r.ctx.Err() == nil {
			r.log.Warn("custody ack not sent; the neighbour will resend", "neighbour", addrString(to), "err", err)
			return
		}
	}
}

// radioAnnounceRoutes is how many routes an announce carries over a radio,
// nearest first: about one LoRa frame, so the 3 % control budget carries
// announces often enough to matter.
const radioAnnounceRoutes = 12

// sendControl sends a hop-by-hop bundle (custody ack, announce).
func (r *Router) sendControl(l transports.Link, to bundle.Addr, kind bundle.Kind, payload []byte) error {
	id, err := bundle.NewID(r.cfg.Rand)
	if err != nil {
		return err
	}
	b := bundle.Bundle{Version: bundle.Version, Kind: kind, Dest: to, ID: id, Lifetime: 60_000, Payload: payload}
	raw, err := b.Marshal()
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(r.ctx, 10*time.Second)
	defer cancel()
	return l.Send(ctx, raw)
}

// onAck releases custody of bundles the neighbour now holds: a bundle
// without a copy budget leaves the store; one with a budget keeps what was
// not given (settle).
func (r *Router) onAck(n *neighbour, ids []bundle.ID) {
	var done, acks []bundle.ID
	var local []Event
	var copies []copyAck
	type judged struct {
		id    bundle.ID
		judge bool
	}
	var gave []judged
	n.mu.Lock()
	for _, id := range ids {
		// Only bundles we sent to this neighbour: an ack can never make us
		// drop a bundle held for someone else.
		f, ok := n.inflight[id]
		if !ok || f.acked {
			continue
		}
		f.acked = true
		acks = append(acks, id)
		if f.spray {
			delete(n.sprays, id)
		}
		if f.grant > 0 {
			copies = append(copies, copyAck{id: id, grant: f.grant, spray: f.spray})
		} else {
			done = append(done, id)
		}
		if f.local && !f.spray {
			local = append(local, Event{Kind: "forwarded", ID: id, Neighbour: n.addr, Medium: f.medium})
		}
		if f.judge || f.grant > 0 {
			gave = append(gave, judged{id, f.judge})
		}
	}
	n.mu.Unlock()
	if len(acks) == 0 {
		return
	}
	if len(done) > 0 {
		if err := r.cfg.Store.Delete(done...); err != nil {
			r.log.Error("releasing acknowledged bundles failed", "err", err)
		}
	}
	now := r.cfg.Now()
	for _, g := range gave {
		r.dtn.gave(g.id, n.addr, g.judge, now)
	}
	r.settle(n, copies)
	n.mu.Lock()
	n.ackGen++
	for _, id := range acks {
		if f := n.inflight[id]; f != nil && f.acked {
			delete(n.inflight, id)
			n.settled[id] = n.ackGen
		}
	}
	n.mu.Unlock()
	if r.cfg.Events != nil {
		for _, e := range local {
			r.cfg.Events(e)
		}
	}
	wake(n.wake)
}

// cameBack reports whether a bundle this node has seen is back round a
// routing loop: it is not for us, we no longer hold it (we passed custody
// on), and it arrives from another neighbour than the one that first handed
// it to us. Acknowledging it as a duplicate would lose its only copy, so the
// router takes custody again and routes it away from where it came from. A
// copy from the same neighbour is a retransmission (our ack was lost) and
// stays a duplicate.
func (r *Router) cameBack(b *bundle.Bundle, from bundle.Addr) bool {
	if b.Dest == r.cfg.Self {
		return false
	}
	orig, ok := r.origins.get(b.ID)
	if !ok || orig == from {
		return false
	}
	if _, err := r.cfg.Store.Get(b.ID); err == nil {
		return false // still held here: a plain duplicate
	}
	r.log.Info("bundle came back round a loop; taking custody again", "bundle", b.ID.String(), "from", addrString(from), "first_from", addrString(orig))
	return true
}

// recentIDs remembers recent bundle IDs, each with an address, bounded
// (the oldest are forgotten first). As Router.origins it holds, for
// recently stored bundles, which neighbour handed each over; after a
// restart it is empty, and a looping bundle is then taken for a
// duplicate, the behaviour before this existed. As dtnState.aired it
// holds the bundles this node aired (addresses unused).
type recentIDs struct {
	mu   sync.Mutex
	m    map[bundle.ID]bundle.Addr
	ring []bundle.ID
	next int
}

func newRecentIDs(size int) *recentIDs {
	return &recentIDs{m: make(map[bundle.ID]bundle.Addr, size), ring: make([]bundle.ID, size)}
}

func (o *recentIDs) put(id bundle.ID, from bundle.Addr) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if _, ok := o.m[id]; ok {
		return
	}
	if old := o.ring[o.next]; old != (bundle.ID{}) {
		delete(o.m, old)
	}
	o.ring[o.next] = id
	o.next = (o.next + 1) % len(o.ring)
	o.m[id] = from
}

// recent lists up to n of the remembered IDs, newest first.
func (o *recentIDs) recent(n int) []bundle.ID {
	o.mu.Lock()
	defer o.mu.Unlock()
	out := make([]bundle.ID, 0, min(n, len(o.m)))
	for k := 1; k <= len(o.ring) && len(out) < n; k++ {
		id := o.ring[(o.next-k+len(o.ring))%len(o.ring)]
		if id == (bundle.ID{}) {
			break
		}
		out = append(out, id)
	}
	return out
}

func (o *recentIDs) has(id bundle.ID) bool {
	_, ok := o.get(id)
	return ok
}

func (o *recentIDs) get(id bundle.ID) (bundle.Addr, bool) {
	o.mu.Lock()
	defer o.mu.Unlock()
	a, ok := o.m[id]
	return a, ok
}

// hasSilent reports whether any link to n is marked silent.
func (n *neighbour) hasSilent() bool {
	n.mu.Lock()
	defer n.mu.Unlock()
	for _, ls := range n.links {
		if ls.silent {
			return true
		}
	}
	return false
}
