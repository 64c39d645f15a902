package meshsim

import (
	"github.com/ternmesh/tern/lora/airtime"
	"time"

	"github.com/ternmesh/tern/bundle"
	"github.com/ternmesh/tern/router/policy"
)

// onTern handles a frame under Tern's policy.
func (n *node) onTern(from int, l *p2p, f *frame) {
	switch f.kind {
	case fData:
		b := f.b
		lim := n.nbrLimit(l)
		if n.overQuota(from) {
			n.s.rep.QuotaRefused++
			return
		}
		if !lim.Allow(addrOf(from), n.now()) {
			// Over this neighbour's rate: no custody ack, it keeps the
			// bundle and its own airtime pays for the retries. A
			// neighbour that keeps at it is judged flooding: routes
			// through it carry the full penalty (tick's Expire applies
			// it), as in the daemon.
			n.s.rep.RateLimited++
			n.flooders.Refused(addrOf(from), n.now())
			return
		}
		if f.to >= 0 {
			n.ack(from, b) // an air spray (broadcast) is not acknowledged: custody stays with the sender
		}
		if n.role == roleLiar {
			return // swallows everything it is given
		}
		if b.junk && from < len(n.s.nodes) && n.s.nodes[from].role == roleLiar {
			n.s.rep.JunkAccepted++
		}
		// A node that handed a bundle on and gets it back (the route now
		// runs through it) takes it again: only a copy it still holds, a
		// delivery it knows of, or the end of the lifetime makes it a
		// duplicate. Custody accepted is never dropped.
		if f.to < 0 && n.seen[b.id] {
			return // an air spray of a bundle seen before is no news (the daemon drops it too)
		}
		if n.store[b.id] != nil || n.rcptSet[b.id] || n.done[b.id] || b.expires <= n.s.now {
			if n.store[b.id] != nil && f.copies > 0 {
				n.store[b.id].copies += f.copies
			}
			return
		}
		n.seen[b.id] = true
		if b.dst == n.idx {
			n.deliver(b)
			return
		}
		n.put(&held{b: b, copies: max(f.copies, 1), from: from, avoid: -1})
		n.process(n.store[b.id])
	case fAck:
		for _, id := range f.ids {
			h := n.store[id]
			if h == nil || !h.inflight || h.to != from {
				continue
			}
			h.inflight, h.tries = false, 0
			n.gave[nbrKey{from, id}] = true
			h.copies -= h.give
			if h.copies <= 0 {
				n.drop(id)
				n.passedOn(id)
			} else if h.routed {
				n.hedgeFor(h, from)
			}
		}
	case fAnnounce:
		units := policy.Units(n.radioMetrics())
		if l != nil {
			units = policy.Units(l.m)
		}
		if n.role == roleLiar {
			return
		}
		n.table.Learn(addrOf(from), units, f.routes, n.now()) // held bundles are processed every tick
	case fNote:
		n.applyReceipts(f.rcpts)
	case fSummary:
		// A full summary lists every receipt the sender knows; only those
		// it learned since its last summary to this node are news.
		fresh := min(uint64(len(f.rcpts)), f.rseq-n.rcptHeard[from])
		n.rcptHeard[from] = f.rseq
		n.applyReceipts(f.rcpts[uint64(len(f.rcpts))-fresh:])
		if n.role == roleLiar {
			return
		}
		has := f.idSet
		for _, id := range policy.Missing(n.heldIDs(), func(id bundle.ID) bool { return has[id] }) {
			h := n.store[id]
			if h.inflight || from == h.from || n.gave[nbrKey{from, id}] {
				continue // the daemon's contact offers a neighbour a bundle once (gaveTo)
			}
			nbrIsDest := h.b.dst == from
			if h.hedge && !nbrIsDest {
				continue // a hedge waits for the receipt, or for the destination itself (the daemon: gaveTo)
			}
			if h.copies <= 1 && !nbrIsDest {
				// One copy goes only to the destination or along a live
				// route, and process routes every held bundle each tick:
				// deciding it again for every summary (the daemon's
				// contact does) only moves it up to a tick sooner, and
				// cost a third of the 1,000-node run.
				continue
			}
			via, live, _ := n.table.NextHop(addrOf(h.b.dst), addrOf(h.from), n.upAddr)
			h.routed = false
			switch policy.Decide(h.copies, nbrIsDest, live && via == addrOf(from), live) {
			case policy.Forward:
				n.hand(h, from, h.copies)
			case policy.Copy:
				give, _ := policy.Spray(h.copies)
				n.hand(h, from, give)
			}
		}
	}
}

// nbrLimit is the ingress limit for neighbours on link l (nil: the radio).
func (n *node) nbrLimit(l *p2p) *policy.Limiter {
	if l != nil {
		return n.wlim
	}
	return n.lim
}

func (n *node) ack(to int, b *simBundle) {
	n.sendTo(to, &frame{kind: fAck, ids: []bundle.ID{b.id}, size: ackBytes})
}

// process decides what to do with a held bundle now: hand it to its
// destination, or along a live route, or keep it for spray on contact.
func (n *node) process(h *held) {
	if h == nil || h.inflight || !n.up {
		return
	}
	if n.reach(h.b.dst) {
		n.hand(h, h.b.dst, h.copies)
		return
	}
	if h.hedge {
		return
	}
	exclude := bundle.Addr{}
	switch {
	case h.avoid >= 0:
		exclude = addrOf(h.avoid)
	case h.from >= 0:
		exclude = addrOf(h.from)
	}
	via, live, _ := n.table.NextHop(addrOf(h.b.dst), exclude, n.upAddr)
	if !live && h.avoid >= 0 {
		// A hedge that got no receipt goes around the neighbour even on
		// an infeasible route (policy.Table.LiveHop): a liar's metric-1
		// claims pin the feasible distance so low that every honest
		// route is infeasible until reputation judges the liar (several
		// bundles). The daemon's nextHop takes such a route for every
		// bundle (its second tier); the simulator only for detours: for
		// every bundle in a hold-down it raised transmissions per
		// delivery from 78 to 103 on average over seeds 1-8 (to 119 on
		// seed 2, over a third of epidemic's), bundles going round loops.
		// A bundle that comes back round a loop is taken again and routed
		// elsewhere (onTern, fData).
		via, live = n.table.LiveHop(addrOf(h.b.dst), exclude, n.upAddr)
	}
	if !live {
		n.airSpray(h)
		return
	}
	j := idxOf(via)
	if !n.p2pUp(j) {
		// A radio hop carries no copy budget and no receipts come back
		// over it (the daemon: grantFor, outbound.go): plain custody
		// moves, nobody is judged and no hedge stays behind.
		n.handWith(h, j, h.copies, 1)
		return
	}
	give := h.copies
	if h.from < 0 && h.copies > 1 && j != h.b.dst {
		// The originator keeps one copy as a hedge against a liar or a
		// broken route; it waits for the destination itself, or for its
		// receipt.
		give = h.copies - 1
	}
	n.rep.Handed(via)
	n.handed[h.b.id] = j
	h.routed = true
	n.hand(h, j, give)
}

// hand sends give copies of h to neighbour j with custody: h stays until
// j's custody ack, and is resent on timeout.
func (n *node) hand(h *held, j, give int) { n.handWith(h, j, give, give) }

// handWith is hand where j's budget (grant) may differ from the copies
// this node gives up (give).
func (n *node) handWith(h *held, j, give, grant int) {
	f := &frame{kind: fData, b: h.b, copies: grant, size: h.b.size + headerBytes, class: h.b.class}
	if !n.sendTo(j, f) {
		return
	}
	h.inflight, h.to, h.give = true, j, give
	h.attempt++
	a := h.attempt
	timeout := p2pTimeout
	if n.radio != nil && n.rup[j] {
		timeout = radioTimeout + 2*n.s.radioAir(f)
	}
	n.s.at(timeout, func() {
		if n.store[h.b.id] != h || !h.inflight || h.attempt != a {
			return
		}
		h.inflight = false
		h.tries++
		if h.tries >= maxTries {
			// The neighbour stopped answering: routes through it go stale.
			h.tries = 0
			if j < len(n.s.nodes) {
				delete(n.rup, j)
				if !n.reach(j) {
					n.table.NeighbourDown(addrOf(j), n.now())
				}
			}
		}
		n.process(h)
	})
}

func (n *node) addReceipt(id bundle.ID) {
	if n.rcptSet[id] {
		return
	}
	n.rcptSet[id] = true
	if len(n.rcpts) >= maxRcpts {
		// The oldest leaves the list but stays known (rcptSet), as in the
		// daemon's receipt log, which remembers 1<<16 receipts it no longer
		// lists: a receipt forgotten and learned again would be passed on
		// again, and with more receipts alive than a list holds they would
		// circle between neighbours for ever.
		n.rcpts = n.rcpts[1:]
	}
	// Summaries in flight hold n.rcpts as it was; append writes only past
	// their end.
	n.rcpts = append(n.rcpts, id)
	n.rcptSeq++
	if n.s.proto != Tern {
		return
	}
	if len(n.rcptNew) == 0 {
		n.s.at(noteDelay, n.sendNotes)
	}
	n.rcptNew = append(n.rcptNew, id)
}

// sendNotes passes the receipts learned since the last note to every
// neighbour on a point-to-point link, as the daemon's receipt notes
// (router/summary.go, notesLoop): copies elsewhere clear within seconds
// rather than at the next full summary, and a neighbour never takes back
// a bundle it would only drop as delivered.
func (n *node) sendNotes() {
	ids := n.rcptNew
	n.rcptNew = nil
	if !n.up || n.role == roleLiar {
		return
	}
	for _, l := range n.links {
		if n.s.linkUp(l) {
			n.s.sendP2P(n.idx, l, &frame{kind: fNote, to: l.other(n.idx), rcpts: ids, size: headerBytes + idBytes*len(ids)})
		}
	}
}

// applyReceipts clears copies of delivered bundles and credits the
// neighbour that carried them.
func (n *node) applyReceipts(ids []bundle.ID) {
	for _, id := range ids {
		if n.rcptSet[id] {
			continue
		}
		n.addReceipt(id)
		if j, ok := n.handed[id]; ok {
			n.rep.Receipted(addrOf(j))
			delete(n.handed, id)
		}
		if h := n.store[id]; h != nil && !h.inflight {
			n.drop(id)
			n.passedOn(id)
		}
	}
}

// announce sends due announces: per point-to-point link, and one LoRa
// broadcast limited by the 3 % control budget.
func (n *node) announce() {
	if n.role == roleLiar {
		n.lie()
		return
	}
	for _, l := range n.links {
		if n.s.linkUp(l) {
			n.announceOnDue(l, false)
		}
	}
	if n.radio == nil {
		return
	}
	now := n.now()
	if n.unchanged(nil, n.rtrickle) {
		return
	}
	routes := n.table.Advertise(bundle.Addr{}, 0)
	if !n.rtrickle.Due(now, policy.Digest(routes)) {
		return
	}
	// On air an announce names nodes by their 4-byte short address and
	// fits one LoRa frame: the nearest destinations first. It carries no
	// receipts: the daemon's ride summaries, which never go on a radio.
	left := n.radio.control.Left(now)
	k := min(len(routes), radioRoutesMax)
	for k > 0 && n.s.loraAir(headerBytes+shortRouteBytes*k) > left {
		k /= 2
	}
	if k == 0 {
		return
	}
	size := headerBytes + shortRouteBytes*k
	n.radio.control.Allow(now, n.s.loraAir(size))
	n.s.sendLoRa(n.idx, &frame{kind: fAnnounce, to: -1, routes: routes[:k], size: size})
}

func (n *node) announceOn(l *p2p) { n.announceOnDue(l, true) }

// unchanged reports whether the announce due on link l (nil: the radio)
// is the one Trickle t last saw and t's next interval has not begun, so
// that Due would say no: the announce need not be built to find out (it
// is most of a 1,000-node run).
func (n *node) unchanged(l *p2p, t *policy.Trickle) bool {
	gen := n.table.AdvertGen()
	last, ok := n.advGen[l]
	n.advGen[l] = gen
	return ok && last == gen && n.now().Before(t.NextAt())
}

func (n *node) announceOnDue(l *p2p, force bool) {
	j := l.other(n.idx)
	t := n.trickles[l]
	if t == nil {
		t = &policy.Trickle{Min: 30 * time.Second, Max: 10 * time.Minute}
		n.trickles[l] = t
	}
	if !force && n.unchanged(l, t) {
		return
	}
	routes := n.table.Advertise(addrOf(j), 0)
	if !t.Due(n.now(), policy.Digest(routes)) && !force {
		return
	}
	n.s.sendP2P(n.idx, l, &frame{kind: fAnnounce, to: j, routes: routes,
		size: headerBytes + routeBytes*len(routes)})
}

// lie: a liar claims every node at metric 1, on every medium, every tick:
// one wired hop from everyone, the least an honest node ever announces
// for another (policy.Units), so no check of the claims alone can tell it.
func (n *node) lie() {
	var routes []bundle.Route
	for i := range n.s.nodes {
		if i != n.idx {
			routes = append(routes, bundle.Route{Dest: addrOf(i), Hops: 1})
		}
	}
	for _, l := range n.links {
		if n.s.linkUp(l) {
			n.s.sendP2P(n.idx, l, &frame{kind: fAnnounce, to: l.other(n.idx), routes: routes, size: headerBytes + routeBytes*len(routes)})
		}
	}
	if n.radio != nil {
		k := min(len(routes), 100)
		n.s.sendLoRa(n.idx, &frame{kind: fAnnounce, to: -1, routes: routes[:k], size: headerBytes + routeBytes*k})
	}
}

// hedgeTimeout is how long the copy kept after a routed hand-over waits
// for the destination's receipt before it goes another way.
const hedgeTimeout = 20 * time.Minute

// hedgeFor keeps what is left of h after a routed hand-over to neighbour
// via as a hedge: it is not sent along the same route again, it goes to
// the destination if this node meets it, and if no receipt comes within
// hedgeTimeout it takes a route that avoids via (or is sprayed), so a
// neighbour that swallows bundles loses each of them one hedge later.
func (n *node) hedgeFor(h *held, via int) {
	h.hedge, h.routed = true, false
	n.s.at(hedgeTimeout, func() {
		if n.store[h.b.id] != h || !h.hedge {
			return
		}
		h.hedge, h.avoid = false, via
		n.process(h)
	})
}

// p2pUp reports whether a point-to-point link to neighbour j is up (then
// sendTo never picks the radio for j).
func (n *node) p2pUp(j int) bool {
	for _, l := range n.links {
		if l.other(n.idx) == j && n.s.linkUp(l) {
			return true
		}
	}
	return false
}

// airSpray puts an unrouted bundle on the radio once, as one broadcast:
// every radio neighbour that lacks it keeps a share of the copies
// (policy.AirShare) and sprays or routes them in turn; nobody
// acknowledges, the sender keeps custody and the rest of the budget.
// Bulk never goes on a radio, and a bundle larger than one LoRa frame is
// not aired (as in the daemon, router/air.go: nobody could ask for a
// lost broadcast fragment again).
//
// The broadcast waits a random moment up to airJitter: hearers of one air
// spray that sprayed again at once would all start together and collide
// at every node that hears two of them. The daemon's radio engine senses
// the channel and backs off a random number of slots; this LoRa model has
// no carrier sense, so the wait stands in for it.
func (n *node) airSpray(h *held) {
	if n.radio == nil || h.aired || h.b.class == policy.Bulk || h.copies < policy.AirSprayMin || h.b.size+headerBytes > airtime.MaxPayloadBytes {
		return
	}
	h.aired = true
	n.s.at(time.Duration(n.s.rng.Int64N(int64(airJitter))), func() {
		if n.store[h.b.id] != h || h.inflight || !n.up {
			h.aired = false
			return
		}
		if _, live, _ := n.table.NextHop(addrOf(h.b.dst), bundle.Addr{}, n.upAddr); live {
			h.aired = false // a route appeared meanwhile: process routes it
			return
		}
		hearers := 0
		for _, j := range n.radio.nbrs {
			if n.rup[j] && n.s.nodes[j].up {
				hearers++
			}
		}
		share, keep := policy.AirShare(h.copies, hearers)
		if share == 0 {
			h.aired = false
			return
		}
		f := &frame{kind: fData, to: -1, b: h.b, copies: share, size: h.b.size + headerBytes, class: h.b.class}
		if !n.s.sendLoRa(n.idx, f) {
			h.aired = false
			return
		}
		h.copies = keep
	})
}

// airJitter bounds the random wait before an air spray.
const airJitter = 20 * time.Second
