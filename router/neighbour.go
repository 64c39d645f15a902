package router

import (
	"context"
	"errors"
	"math"
	"sync"
	"time"

	"github.com/ternmesh/tern/bundle"
	"github.com/ternmesh/tern/store"
	"github.com/ternmesh/tern/transports"
)

// neighbour is one directly connected node and the links to it. Its sender
// goroutine drains the store's queue for this next hop over the newest live
// link, keeping at most Window bundles in flight until custody acks return.
type neighbour struct {
	addr bundle.Addr
	wake chan struct{}

	mu       sync.Mutex
	links    []*linkState
	inflight map[bundle.ID]*flight
}

type linkState struct {
	l     transports.Link
	since time.Time
}

// flight is a bundle sent to this neighbour and not yet acknowledged.
type flight struct {
	deadline time.Time
	attempts int
	local    bool // originated here: report "forwarded" on ack
}

func (n *neighbour) up() bool {
	n.mu.Lock()
	defer n.mu.Unlock()
	return len(n.links) > 0
}

// link returns the link to send on: the newest one.
func (n *neighbour) link() transports.Link {
	n.mu.Lock()
	defer n.mu.Unlock()
	if len(n.links) == 0 {
		return nil
	}
	return n.links[len(n.links)-1].l
}

// linkFor returns the link to carry a bundle of kind k: an end-to-end
// encrypted data bundle never goes on a clear-only (amateur) link; signed
// plaintext and hop-by-hop control go on any. Among the eligible links a
// link that is not a shared radio comes first, then the shortest measured
// round trip (a neighbour seen on the LAN and over the internet is reached
// over the LAN), then the newest. When the chosen link dies the next one
// takes over, and custody resends what was in flight. A bulk bundle
// (bundle.FlagBulk) never goes on a radio link.
func (n *neighbour) linkFor(k bundle.Kind, f bundle.Flags) transports.Link {
	n.mu.Lock()
	defer n.mu.Unlock()
	var best transports.Link
	var bestKey [2]float64
	for i := len(n.links) - 1; i >= 0; i-- {
		l := n.links[i].l
		if k == bundle.KindData && transports.IsClearOnly(l) || heldOffRadio(l, f) {
			continue
		}
		key := [2]float64{0, math.Inf(1)} // [radio?, rtt]
		if _, radio := l.(transports.RadioLink); radio {
			key[0] = 1
		}
		if s, ok := l.(transports.StatsLink); ok && s.Stats().RTTMillis > 0 {
			key[1] = s.Stats().RTTMillis
		}
		if best == nil || key[0] < bestKey[0] || key[0] == bestKey[0] && key[1] < bestKey[1] {
			best, bestKey = l, key
		}
	}
	return best
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
		n = &neighbour{addr: p.Addr, wake: make(chan struct{}, 1), inflight: map[bundle.ID]*flight{}}
		r.nbrs[p.Addr] = n
		r.wg.Add(1)
		go r.sendLoop(n)
	}
	r.mu.Unlock()
	n.mu.Lock()
	n.links = append(n.links, &linkState{l: l, since: now})
	for _, f := range n.inflight {
		f.deadline = time.Time{} // resend at once over the new link
	}
	n.mu.Unlock()
	r.log.Info("link up", "neighbour", addrString(p.Addr), "remote", p.Remote, "authenticated", p.Authenticated)
	r.table.neighbourUp(p.Addr, now)
	r.sendAnnounce(p.Addr, l)
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
		r.routesChanged()
	}
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
	var recs []store.Record
	var acks, acked []bundle.ID
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
			if r.table.learn(r.cfg.Self, n.addr, a, now) {
				r.routesChanged()
			}
			continue
		}
		r.m.add(n.addr, func(c *counters) *atomicU64 { return &c.in })
		rem := b.Remaining(0)
		switch {
		case rem <= 0:
			r.m.add(n.addr, func(c *counters) *atomicU64 { return &c.expired })
			acks = append(acks, b.ID)
			continue
		case r.cfg.Store.Has(b.ID) && !r.cameBack(b, n.addr):
			r.m.add(n.addr, func(c *counters) *atomicU64 { return &c.duplicate })
			acks = append(acks, b.ID)
			continue
		case b.Dest != r.cfg.Self && b.HopLimit == 0:
			r.m.reject(n.addr, "hop-limit")
			acks = append(acks, b.ID)
			continue
		}
		rec := store.Record{
			ID: b.ID, Dest: b.Dest, From: n.addr, Raw: f,
			Received: now.UnixMilli(), Expires: now.Add(rem).UnixMilli(),
			Readmit: b.Dest != r.cfg.Self, // only a bundle that cameBack gets here seen
		}
		if b.Dest == r.cfg.Self {
			rec.NextHop = r.cfg.Self
		} else {
			rec.NextHop, _ = r.route(b.Dest, n.addr, b.Kind)
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
				acks = append(acks, recs[i].ID)
				hops[recs[i].NextHop] = true
				r.origins.put(recs[i].ID, n.addr)
			case errors.Is(err, store.ErrDuplicate):
				r.m.add(n.addr, func(c *counters) *atomicU64 { return &c.duplicate })
				acks = append(acks, recs[i].ID)
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

func (r *Router) sendAnnounce(to bundle.Addr, l transports.Link) {
	r.mu.Lock()
	r.announce++
	seq := r.announce
	r.mu.Unlock()
	a := bundle.Announce{Seq: seq, Routes: r.table.advertise(r.cfg.Self, to)}
	payload, err := a.Marshal()
	if err == nil {
		err = r.sendControl(l, to, bundle.KindAnnounce, payload)
	}
	if err != nil && r.ctx.Err() == nil {
		r.log.Debug("announce not sent", "neighbour", addrString(to), "err", err)
	}
}

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

// onAck releases custody of bundles the neighbour now holds.
func (r *Router) onAck(n *neighbour, ids []bundle.ID) {
	var done []bundle.ID
	var local []bundle.ID
	n.mu.Lock()
	for _, id := range ids {
		// Only bundles we sent to this neighbour: an ack can never make us
		// drop a bundle held for someone else.
		if f, ok := n.inflight[id]; ok {
			delete(n.inflight, id)
			done = append(done, id)
			if f.local {
				local = append(local, id)
			}
		}
	}
	n.mu.Unlock()
	if len(done) == 0 {
		return
	}
	if err := r.cfg.Store.Delete(done...); err != nil {
		r.log.Error("releasing acknowledged bundles failed", "err", err)
	}
	if r.cfg.Events != nil {
		for _, id := range local {
			r.cfg.Events(Event{Kind: "forwarded", ID: id, Neighbour: n.addr})
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

// origins remembers, for recently stored bundles, which neighbour handed
// each over; bounded (the oldest entries are forgotten first). After a
// restart it is empty: a looping bundle is then taken for a duplicate, the
// behaviour before this existed.
type origins struct {
	mu   sync.Mutex
	m    map[bundle.ID]bundle.Addr
	ring []bundle.ID
	next int
}

func newOrigins(size int) *origins {
	return &origins{m: make(map[bundle.ID]bundle.Addr, size), ring: make([]bundle.ID, size)}
}

func (o *origins) put(id bundle.ID, from bundle.Addr) {
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

func (o *origins) get(id bundle.ID) (bundle.Addr, bool) {
	o.mu.Lock()
	defer o.mu.Unlock()
	a, ok := o.m[id]
	return a, ok
}
