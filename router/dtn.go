package router

import (
	"errors"
	"sort"
	"sync"
	"time"

	"github.com/ternmesh/tern/bundle"
	"github.com/ternmesh/tern/router/policy"
	"github.com/ternmesh/tern/store"
)

// Delay-tolerant forwarding for bundles that have no end-to-end path.
//
// A bundle submitted here starts with a copy budget (policy.DefaultCopies),
// kept with its record in the store. While a live route exists the bundle
// is forwarded with its budget, hop by hop in custody as before. When none
// exists it waits (unrouted, or in the queue of the custodian that last
// reached its destination), and on every contact the two neighbours
// exchange summaries over a link that is not a radio: the IDs each holds
// and the IDs each knows delivered. For what the neighbour lacks, this node
// decides with policy.Decide: hand the bundle over with all its copies (the
// neighbour is the destination or has a live route to it), give it half
// the copies (binary spray-and-wait, policy.Spray), or keep it. A copy
// travels in custody like any bundle, preceded by a grant that tells the
// receiver its budget; a holder with one copy left waits for the
// destination or a live route. Once a bundle is delivered, its ID rides
// the summaries from node to node as a receipt, and every node holding a
// spare copy of it drops that copy.
//
// Over a radio, where summaries do not go, an unrouted bundle with enough
// copies is broadcast once to every radio neighbour with a share of its
// budget (air spray, air.go).
//
// The originator also keeps one copy back (a hedge) when it hands a
// bundle over on a live route that does not end at the next hop: if no
// receipt comes back within ReceiptTimeout the neighbour is judged
// (policy.Reputation: routes through a neighbour that swallows bundles are
// penalised until unusable) and the hedge goes out again another way. A
// hedge is held apart from every queue (parked) until its receipt, a new
// route, or HedgeFor after it was submitted.
//
// Receipts are not authenticated (a relay cannot check an end-to-end
// receipt): a lying neighbour can make others drop spare copies, never a
// bundle held in plain custody.

// ParkedHop is the pseudo next hop of hedges in the store
// (store.Record.NextHop): spare copies held here that no queue drains,
// shown to users as "held as a spare copy". No node address is all 0xff in
// practice (addresses are hashes).
func ParkedHop() bundle.Addr {
	return bundle.Addr{0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff}
}

func parked() bundle.Addr { return ParkedHop() }

// Bounds of the in-memory delay-tolerant state.
const (
	maxReceipts = bundle.MaxSummaryIDs // receipts remembered and passed on
	maxGiven    = 1 << 16              // bundles whose hand-overs are remembered
	maxGrants   = 1 << 16              // grants waiting for their bundle
	grantTTL    = 2 * time.Minute      // a grant whose bundle never came is forgotten
)

// dtnState is the router's memory of copies, grants, receipts and hand-overs.
type dtnState struct {
	mu sync.Mutex
	// reserved counts copies promised to neighbours as sprays not yet
	// acknowledged, per bundle, so two contacts at once never give away
	// more than the budget. (A bundle handed over from a queue takes what
	// is not promised; over-granting after a lost flight only costs a
	// copy, never the bundle: a record leaves the store only after a
	// custody ack.)
	reserved map[bundle.ID]int
	// grants received: the budget of a bundle a neighbour is handing over.
	grants map[grantKey]grantEntry
	// given remembers to whom each bundle was handed (copies or custody),
	// and the live-route hand-over awaiting a receipt.
	given map[bundle.ID]*handover
	ring  []bundle.ID // given, oldest first, for eviction
	rcpt  receiptLog
	// savedSeq is the receipt log's seq at its last save (persist.go).
	savedSeq uint64

	// aired remembers the bundles this node put on the air (air.go).
	aired *recentIDs
	// copyMu serialises the read-modify-write of stored copy budgets
	// (settle, keepCopies), so that an ack and an air spray at once both
	// count.
	copyMu sync.Mutex

	sprayed, cleared, learned, resent, airSprays atomicU64
}

type grantKey struct {
	from bundle.Addr
	id   bundle.ID
}

type grantEntry struct {
	copies uint16
	at     time.Time
	aired  bool // broadcast on a radio (bundle.SummaryAired): no custody ack
}

type handover struct {
	to []bundle.Addr // every neighbour given it
	// judge is the neighbour it was handed to on a live route, awaiting a
	// receipt since at (zero when there is nothing to judge).
	judge  bundle.Addr
	at     time.Time
	judged bool // counted unreceipted already; a late receipt credits it
}

func newDTN() *dtnState {
	return &dtnState{aired: newRecentIDs(maxAired), reserved: map[bundle.ID]int{}, grants: map[grantKey]grantEntry{},
		given: map[bundle.ID]*handover{}, rcpt: newReceiptLog(maxReceipts)}
}

// gaveTo reports whether id was handed to n before.
func (d *dtnState) gaveTo(id bundle.ID, n bundle.Addr) bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	if h := d.given[id]; h != nil {
		for _, a := range h.to {
			if a == n {
				return true
			}
		}
	}
	return false
}

// gave records that id went to n; judge: on a live route, awaiting a
// receipt (the reputation verdict).
func (d *dtnState) gave(id bundle.ID, n bundle.Addr, judge bool, now time.Time) {
	d.mu.Lock()
	defer d.mu.Unlock()
	h := d.given[id]
	if h == nil {
		if len(d.ring) >= maxGiven {
			delete(d.given, d.ring[0])
			d.ring = d.ring[1:]
		}
		h = &handover{}
		d.given[id] = h
		d.ring = append(d.ring, id)
	}
	h.to = append(h.to, n)
	if judge {
		h.judge, h.at, h.judged = n, now, false
	}
}

// receiptLog is the bounded, ordered list of bundle IDs known delivered.
type receiptLog struct {
	seq  uint64 // sequence number of the newest entry
	ents []receipt
	set  map[bundle.ID]struct{}
	max  int
	// forgotten remembers the receipts that left ents (16 x max of them):
	// one heard again is no news. Otherwise, with more receipts alive in
	// the network than ents holds (a flood of junk delivered), a receipt
	// one node dropped would come back from a neighbour's full summary,
	// go out again in this node's next note, come back again to a
	// neighbour that had dropped it in turn, and circle for ever.
	forgotten *recentIDs
}

type receipt struct {
	seq  uint64
	id   bundle.ID
	from bundle.Addr // the neighbour that told us (zero: delivered here)
}

func newReceiptLog(max int) receiptLog {
	return receiptLog{set: map[bundle.ID]struct{}{}, max: max, forgotten: newRecentIDs(16 * max)}
}

// add appends id, learned from neighbour from, and reports whether it was
// news: not in the log, nor one of the forgotten.
func (l *receiptLog) add(id bundle.ID, from bundle.Addr) bool {
	if _, ok := l.set[id]; ok || l.forgotten.has(id) {
		return false
	}
	if len(l.ents) >= l.max {
		delete(l.set, l.ents[0].id)
		l.forgotten.put(l.ents[0].id, l.ents[0].from)
		l.ents = l.ents[1:]
	}
	l.seq++
	l.ents = append(l.ents, receipt{seq: l.seq, id: id, from: from})
	l.set[id] = struct{}{}
	return true
}

// newest lists up to max of the newest receipts not learned from to, and
// the sequence number of the newest.
func (l *receiptLog) newest(to bundle.Addr, limit int) ([]bundle.ID, uint64) {
	start := max(0, len(l.ents)-limit)
	var out []bundle.ID
	for _, e := range l.ents[start:] {
		if e.from != to {
			out = append(out, e.id)
		}
	}
	return out, l.seq
}

// since lists up to max receipts after seq not learned from to, and the
// sequence number reached.
func (l *receiptLog) since(seq uint64, to bundle.Addr, max int) ([]bundle.ID, uint64) {
	var out []bundle.ID
	reached := seq
	for _, e := range l.ents {
		if e.seq <= seq {
			continue
		}
		if len(out) >= max {
			break
		}
		reached = e.seq
		if e.from != to {
			out = append(out, e.id)
		}
	}
	return out, reached
}

// submitCopies is the copy budget of a locally originated bundle.
func submitCopies(k bundle.Kind) uint16 {
	if k == bundle.KindData || k == bundle.KindClearSigned {
		return policy.DefaultCopies
	}
	return 0
}

// takeGrant returns (and forgets) the budget neighbour from granted for id:
// 0 when it sent none (plain custody); aired when the grant came with a
// radio broadcast of the bundle (no custody ack is due).
func (d *dtnState) takeGrant(from bundle.Addr, id bundle.ID) (copies uint16, aired bool) {
	d.mu.Lock()
	defer d.mu.Unlock()
	k := grantKey{from, id}
	g, ok := d.grants[k]
	if !ok {
		return 0, false
	}
	delete(d.grants, k)
	return g.copies, g.aired
}

func (d *dtnState) addGrants(from bundle.Addr, gs []bundle.Grant, now time.Time, aired bool) {
	d.mu.Lock()
	defer d.mu.Unlock()
	// A neighbour's number is never trusted beyond the largest budget:
	// UnmarshalSummary and the radio's aired frame refuse a grant over
	// bundle.MaxCopies, but clamp all the same, so that no path from a
	// neighbour into the store carries more.
	const limit = uint16(bundle.MaxCopies)
	for _, g := range gs {
		if len(d.grants) >= maxGrants {
			return
		}
		d.grants[grantKey{from, g.ID}] = grantEntry{copies: min(g.Copies, limit), at: now, aired: aired}
	}
}

// avail is how many of rec's copies are not promised in flight.
func (d *dtnState) avail(rec store.Record) int {
	d.mu.Lock()
	defer d.mu.Unlock()
	return int(rec.Copies) - d.reserved[rec.ID]
}

func (d *dtnState) reserve(id bundle.ID, n int) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.reserved[id] += n
}

func (d *dtnState) unreserve(id bundle.ID, n int) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.reserved[id] -= n; d.reserved[id] <= 0 {
		delete(d.reserved, id)
	}
}

// grantFor decides the budget handed to neighbour n with a queued record
// sent over a link that is (not) a radio, live saying whether n is on a
// live route to the bundle's destination: 0 for plain custody (a record
// without a budget, or a radio hop, which carries no grants); all the
// copies not promised elsewhere; all but one (the hedge) when the bundle
// was originated here and n is a relay on a live route.
func (r *Router) grantFor(n *neighbour, rec store.Record, radio, live bool) uint16 {
	if rec.Copies == 0 || radio {
		return 0
	}
	g := r.dtn.avail(rec)
	if g <= 0 {
		return 0
	}
	if rec.From == (bundle.Addr{}) && g > 1 && n.addr != rec.Dest && live {
		g--
	}
	return uint16(min(g, bundle.MaxCopies))
}

// settle applies custody acks of bundles handed over with a budget: the
// copies given are subtracted, and a record with none left is released;
// one kept back after a live hand-over (a hedge) is parked.
func (r *Router) settle(n *neighbour, acks []copyAck) {
	if len(acks) == 0 {
		return
	}
	var del []bundle.ID
	var upd []store.CopyUpdate
	r.dtn.mu.Lock()
	delivered := map[bundle.ID]bool{}
	for _, a := range acks {
		// A receipt can overtake the custody ack (the destination was
		// one fast hop further): the spare copy has nothing left to do.
		if _, ok := r.dtn.rcpt.set[a.id]; ok {
			delivered[a.id] = true
		}
		if !a.spray {
			continue
		}
		if r.dtn.reserved[a.id] -= int(a.grant); r.dtn.reserved[a.id] <= 0 {
			delete(r.dtn.reserved, a.id)
		}
	}
	r.dtn.mu.Unlock()
	r.dtn.copyMu.Lock()
	defer r.dtn.copyMu.Unlock()
	for _, a := range acks {
		rec, err := r.cfg.Store.Get(a.id)
		if err != nil {
			continue // cleared by a receipt meanwhile
		}
		left := int(rec.Copies) - int(a.grant)
		switch {
		case left <= 0 || delivered[a.id]:
			del = append(del, a.id)
		case a.spray:
			upd = append(upd, store.CopyUpdate{ID: a.id, Copies: uint16(left), NextHop: rec.NextHop})
		default:
			upd = append(upd, store.CopyUpdate{ID: a.id, Copies: uint16(left), NextHop: parked()})
		}
		if a.spray {
			r.dtn.sprayed.Add(1)
		}
	}
	if err := r.cfg.Store.Delete(del...); err != nil {
		r.log.Error("releasing acknowledged bundles failed", "err", err)
	}
	if err := r.cfg.Store.SetCopies(upd...); err != nil && !errors.Is(err, store.ErrNotFound) {
		r.log.Error("updating copy budgets failed", "neighbour", addrString(n.addr), "err", err)
	}
}

type copyAck struct {
	id    bundle.ID
	grant uint16
	spray bool
}

// contact decides, after neighbour n's summary listed what it holds, which
// of the delay-tolerant bundles held here (with a budget, and no live
// route) n gets: all copies (policy.Forward: n is the destination or on a
// live route to it) or a share (policy.Copy).
func (r *Router) contact(n *neighbour, has map[bundle.ID]bool) {
	cands := r.waiting()
	var forward []bundle.ID
	sprays := map[bundle.ID]uint16{}
	for _, rec := range cands {
		if rec.Copies == 0 || has[rec.ID] || rec.From == n.addr || rec.Dest == r.cfg.Self || r.dtn.gaveTo(rec.ID, n.addr) {
			continue
		}
		avail := r.dtn.avail(rec)
		if avail <= 0 {
			continue
		}
		via, live, _ := r.route(rec.Dest, rec.From, cargoOf(rec.Raw))
		switch policy.Decide(avail, rec.Dest == n.addr, live && via == n.addr, live && via != n.addr) {
		case policy.Forward:
			if rec.NextHop != n.addr {
				forward = append(forward, rec.ID)
			}
		case policy.Copy:
			give, _ := policy.Spray(avail)
			sprays[rec.ID] = uint16(min(give, bundle.MaxCopies))
		}
	}
	if len(forward) > 0 {
		if err := r.cfg.Store.SetNextHop(n.addr, forward...); err != nil && !errors.Is(err, store.ErrNotFound) {
			r.log.Error("handing waiting bundles to a neighbour failed", "neighbour", addrString(n.addr), "err", err)
		}
	}
	if len(sprays) > 0 {
		n.mu.Lock()
		for id, g := range sprays {
			if _, dup := n.sprays[id]; !dup && len(n.links) > 0 {
				n.sprays[id] = g
				r.dtn.reserve(id, int(g))
			}
		}
		n.mu.Unlock()
		r.log.Debug("spraying copies on contact", "neighbour", addrString(n.addr), "bundles", len(sprays))
	}
	if len(forward)+len(sprays) > 0 {
		wake(n.wake)
	}
}

// waiting lists the bundles with a budget that wait for a contact: the
// unrouted ones, those queued for a neighbour that is down (a custodian
// to wait for), and the parked hedges.
func (r *Router) waiting() []store.Record {
	st := r.cfg.Store
	var out []store.Record
	add := func(hop bundle.Addr) {
		if recs, err := st.ForNextHop(hop, 4096); err == nil {
			out = append(out, recs...)
		}
	}
	add(bundle.Addr{})
	add(parked())
	r.mu.Lock()
	var down []bundle.Addr
	for a, n := range r.nbrs {
		if !n.up() {
			down = append(down, a)
		}
	}
	r.mu.Unlock()
	for _, a := range down {
		add(a)
	}
	return out
}

// learnReceipts takes delivery receipts heard from neighbour from (zero:
// delivered here): spare copies of those bundles are dropped, the
// neighbour they were handed to on a live route is credited, and they are
// passed on in the next notes.
func (r *Router) learnReceipts(from bundle.Addr, ids []bundle.ID) {
	var fresh []bundle.ID
	var credit []bundle.Addr
	var late []bundle.Addr
	r.dtn.mu.Lock()
	for _, id := range ids {
		if !r.dtn.rcpt.add(id, from) {
			continue
		}
		fresh = append(fresh, id)
		// The receipt counts for the neighbour judged only if it was the
		// last one given the bundle: a hedge delivered another way says
		// nothing good about the first.
		if h := r.dtn.given[id]; h != nil && h.judge != (bundle.Addr{}) && h.to[len(h.to)-1] == h.judge {
			if h.judged {
				late = append(late, h.judge)
			} else {
				credit = append(credit, h.judge)
			}
			h.judge = bundle.Addr{}
		}
	}
	r.dtn.mu.Unlock()
	if len(fresh) == 0 {
		return
	}
	r.dtn.learned.Add(uint64(len(fresh)))
	changed := false
	for _, n := range credit {
		changed = r.table.judge(n, true) || changed
	}
	for _, n := range late {
		changed = r.table.credit(n) || changed
	}
	if changed {
		r.routesChanged()
	}
	var clear []bundle.ID
	for _, id := range fresh {
		if rec, err := r.cfg.Store.Get(id); err == nil && rec.Copies > 0 && rec.NextHop != r.cfg.Self {
			clear = append(clear, id)
		}
	}
	if len(clear) > 0 {
		if err := r.cfg.Store.Delete(clear...); err != nil {
			r.log.Error("dropping delivered copies failed", "err", err)
		} else {
			r.dtn.cleared.Add(uint64(len(clear)))
			r.log.Debug("dropped spare copies of delivered bundles", "count", len(clear))
		}
	}
	wake(r.notes)
}

// judgeDue gives the verdict on hand-overs that got no receipt within
// ReceiptTimeout (the neighbour's reputation suffers) and sends their
// hedges out another way; it drops hedges older than HedgeFor.
func (r *Router) judgeDue(now time.Time) {
	type due struct {
		id bundle.ID
		to bundle.Addr
	}
	var verdicts []due
	r.dtn.mu.Lock()
	for id, h := range r.dtn.given {
		if h.judge != (bundle.Addr{}) && !h.judged && now.Sub(h.at) >= r.cfg.ReceiptTimeout {
			h.judged = true
			verdicts = append(verdicts, due{id, h.judge})
		}
	}
	for k, g := range r.dtn.grants {
		if now.Sub(g.at) > grantTTL {
			delete(r.dtn.grants, k)
		}
	}
	r.dtn.mu.Unlock()
	changed := false
	for _, v := range verdicts {
		if r.table.judge(v.to, false) {
			changed = true
			r.log.Warn("routes through a neighbour lose preference: bundles handed to it are not delivered", "neighbour", addrString(v.to))
		}
	}
	recs, err := r.cfg.Store.ForNextHop(parked(), 4096)
	if err != nil {
		return
	}
	late := map[bundle.ID]bool{}
	for _, v := range verdicts {
		late[v.id] = true
	}
	var drop []bundle.ID
	byHop := map[bundle.Addr][]bundle.ID{}
	for _, rec := range recs {
		if now.Sub(time.UnixMilli(rec.Received)) > r.cfg.HedgeFor {
			drop = append(drop, rec.ID)
			continue
		}
		if !late[rec.ID] && !changed {
			continue
		}
		if nh, ok := r.hedgeHop(rec, late[rec.ID]); ok {
			byHop[nh] = append(byHop[nh], rec.ID)
			r.dtn.resent.Add(1)
		}
	}
	if len(drop) > 0 {
		if err := r.cfg.Store.Delete(drop...); err != nil {
			r.log.Error("dropping old hedges failed", "err", err)
		}
	}
	r.moveTo(byHop)
	if changed {
		r.routesChanged()
	}
}

// hedgeHop is where a parked hedge should go now: the best live route, if
// it goes through a neighbour the bundle was not handed to yet (routes
// changed, for instance because the first one was penalised). late: no
// receipt came within ReceiptTimeout, so the next best live route not
// through the neighbour last given it will do.
func (r *Router) hedgeHop(rec store.Record, late bool) (bundle.Addr, bool) {
	r.dtn.mu.Lock()
	var tried []bundle.Addr
	if h := r.dtn.given[rec.ID]; h != nil {
		tried = append(tried, h.to...)
	}
	r.dtn.mu.Unlock()
	excl := rec.From
	if late && len(tried) > 0 {
		excl = tried[len(tried)-1]
	}
	nh, live, ok := r.route(rec.Dest, excl, cargoOf(rec.Raw))
	if !ok || !live {
		return bundle.Addr{}, false
	}
	for _, a := range tried {
		if a == nh {
			return bundle.Addr{}, false
		}
	}
	return nh, true
}

// moveTo queues bundles for new next hops and wakes their senders.
func (r *Router) moveTo(byHop map[bundle.Addr][]bundle.ID) {
	for nh, ids := range byHop {
		if err := r.cfg.Store.SetNextHop(nh, ids...); err != nil && !errors.Is(err, store.ErrNotFound) {
			r.log.Error("reroute failed", "next_hop", addrString(nh), "err", err)
			continue
		}
		r.wakeHop(nh)
	}
}

func (r *Router) dtnMetrics() DTNCounters {
	c := DTNCounters{Sprayed: r.dtn.sprayed.Load(), Cleared: r.dtn.cleared.Load(), Receipts: r.dtn.learned.Load(), Resent: r.dtn.resent.Load(),
		Aired: r.dtn.airSprays.Load()}
	for _, n := range r.neighbours() {
		if r.table.penalised(n.addr) {
			c.Penalised = append(c.Penalised, addrString(n.addr))
		}
	}
	sort.Strings(c.Penalised)
	return c
}

// delivered records receipts for bundles delivered here (or rejected for
// good: no copy of them is worth keeping either) and passes them on.
func (r *Router) delivered(ids []bundle.ID) {
	fresh := 0
	r.dtn.mu.Lock()
	for _, id := range ids {
		if r.dtn.rcpt.add(id, bundle.Addr{}) {
			fresh++
		}
	}
	r.dtn.mu.Unlock()
	if fresh > 0 {
		r.dtn.learned.Add(uint64(fresh))
		wake(r.notes)
	}
}
