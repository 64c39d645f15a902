package meshsim

import (
	"time"

	"github.com/ternmesh/tern/bundle"
	"github.com/ternmesh/tern/router/policy"
)

// held is a bundle in a node's store.
type held struct {
	b        *simBundle
	copies   int
	from     int  // neighbour that handed it over, -1 if originated
	hedge    bool // the copy kept after a routed hand-over: waits for the receipt
	routed   bool // the hand-over in flight follows a live route
	avoid    int  // after a hedge timed out: the neighbour that got the bundle (-1: none)
	aired    bool // this node has sprayed it on the radio (once per bundle)
	inflight bool
	to, give int
	tries    int
	attempt  int
}

type nbrKey struct {
	n  int
	id bundle.ID
}

type node struct {
	s     *Sim
	idx   int
	addr  bundle.Addr
	role  role
	up    bool
	links []*p2p
	radio *radio
	rup   map[int]bool // radio neighbours heard and up

	store  map[bundle.ID]*held
	byFrom map[int]int // bundles held, by the neighbour that handed them over (-1: originated)
	order  []bundle.ID
	// heldIDs' cache, valid while heldAt == heldVer (bumped by put and
	// drop; both start at 0 with the store and the cache empty).
	heldList        []bundle.ID
	heldSet         map[bundle.ID]bool
	heldVer, heldAt uint64
	// gone lists the bundles this node recently passed on (custody moved,
	// or delivered elsewhere), oldest first, at most maxGone: summaries
	// list them beside the held ones so that no neighbour pushes them back.
	gone    []bundle.ID
	goneSet map[bundle.ID]bool
	// summaryIDs' cache, valid while sumAt == heldVer+goneVer.
	sumList        []bundle.ID
	sumSet         map[bundle.ID]bool
	goneVer, sumAt uint64
	seen           map[bundle.ID]bool // flooding and receive dedupe
	done           map[bundle.ID]bool // delivered here (application saw it)
	peak           int

	// Tern.
	table *policy.Table
	rep   *policy.Reputation
	lim   *policy.Limiter // radio neighbours
	wlim  *policy.Limiter // neighbours on point-to-point links
	// flooders judges the neighbours that keep sending past their
	// ingress limit.
	flooders *policy.FloodWatch
	handed   map[bundle.ID]int
	gave     map[nbrKey]bool // bundles a neighbour took custody of from here
	rcpts    []bundle.ID
	rcptSet  map[bundle.ID]bool
	rcptNew  []bundle.ID // learned since the last note
	rcptSeq  uint64      // receipts ever added to rcpts
	// rcptHeard is, per neighbour, its rcptSeq in the last full summary
	// heard from it.
	rcptHeard map[int]uint64
	trickles  map[*p2p]*policy.Trickle
	advGen    map[*p2p]uint64 // per link (nil: radio): Table.AdvertGen when Trickle last judged it
	rtrickle  *policy.Trickle

	// Epidemic: what each neighbour is known to hold.
	known map[nbrKey]bool
}

const (
	tick = 30 * time.Second
	// antiEntropy is how often epidemic forwarding exchanges summaries
	// with every neighbour (radio included). Over seeds 1-8 it delivers
	// 366 of 400 at 10 minutes and 350 at 30 s, its radio congested.
	antiEntropy = 10 * time.Minute
	// ternSummaryEvery is how often Tern sends a full summary on each
	// point-to-point link: the daemon's announce round, AnnounceInterval
	// (router/summary.go). At 10 minutes Tern delivered 336 on average
	// over seeds 1-8, at 30 s 343.
	ternSummaryEvery = 30 * time.Second
	// maxRcpts bounds the receipts remembered and listed in a full
	// summary (the daemon's receipt log, bundle.MaxSummaryIDs).
	maxRcpts = 4096
	// noteDelay gathers new receipts into one note per neighbour (the
	// daemon's SummaryDelay default).
	noteDelay   = time.Second
	ackBytes    = 40
	idBytes     = 16
	headerBytes = 24
	routeBytes  = 18
	// shortRouteBytes is a route on air: 4-byte short address and metric.
	shortRouteBytes = 5
	// radioRoutesMax is how many routes a LoRa announce carries, nearest
	// first: the daemon's radioAnnounceRoutes (router/neighbour.go). Over
	// seeds 1-8 of city100: 12 routes deliver 337 of 400 on average with
	// 1472 s of airtime; 40 routes 336 with 4673 s; 6 routes 331 with
	// 997 s.
	radioRoutesMax = 12
	// maxGone bounds the passed-on IDs a summary lists (the daemon's
	// summaries list up to bundle.MaxSummaryIDs).
	maxGone      = 512
	maxTries     = 4
	p2pTimeout   = 5 * time.Second
	radioTimeout = 30 * time.Second
)

func newNode(s *Sim, i int, p placed) *node {
	n := &node{s: s, idx: i, addr: addrOf(i), role: p.role, up: true,
		store: map[bundle.ID]*held{}, goneSet: map[bundle.ID]bool{}, byFrom: map[int]int{}, seen: map[bundle.ID]bool{}, done: map[bundle.ID]bool{},
		rup: map[int]bool{}, handed: map[bundle.ID]int{}, gave: map[nbrKey]bool{}, rcptHeard: map[int]uint64{}, rcptSet: map[bundle.ID]bool{},
		trickles: map[*p2p]*policy.Trickle{}, advGen: map[*p2p]uint64{}, known: map[nbrKey]bool{}}
	if p.lora > 0 {
		burst := time.Duration(float64(time.Hour) * s.sc.DutyCycle / 6)
		n.radio = &radio{rangeKm: p.lora, budget: policy.NewBudget(s.sc.DutyCycle, burst),
			control: policy.NewBudget(policy.ControlShare, time.Duration(float64(10*time.Minute)*policy.ControlShare))}
		n.rtrickle = &policy.Trickle{Min: 5 * time.Minute, Max: 30 * time.Minute}
	}
	n.table = policy.NewTable(n.addr, policy.TableConfig{LiveFor: 65 * time.Minute, StaleFor: 24 * time.Hour, HoldDown: 5 * time.Minute})
	n.rep = policy.NewReputation()
	n.flooders = policy.NewFloodWatch()
	n.table.SetPenalty(func(v bundle.Addr) uint8 {
		if n.flooders.Flooding(v, n.now()) {
			return policy.MaxMetric // as the daemon's route table (router/routes.go)
		}
		return n.rep.PenaltyOf(v)
	})
	// Per-neighbour ingress limits, as in the daemon: generous on wired
	// links (a hub may hand a returning neighbour all it holds), tight on
	// the radio.
	n.lim = policy.NewLimiter(0.5, 30)   // radio: 30 at once, then one per 2 s
	n.wlim = policy.NewLimiter(0.5, 500) // wired: 500 at once (a returning neighbour's share), then one per 2 s
	return n
}

func (n *node) now() time.Time { return epoch.Add(n.s.now) }

func (n *node) start() {
	if n.radio != nil {
		for _, j := range n.radio.nbrs {
			n.rup[j] = true
		}
	}
	for _, l := range n.links {
		if n.s.linkUp(l) && l.a == n.idx {
			n.s.nodes[l.a].linkEvent(l, true)
			n.s.nodes[l.b].linkEvent(l, true)
		}
	}
	if n.radio != nil && n.s.proto == Tern {
		for _, j := range n.radio.nbrs {
			n.table.NeighbourUp(addrOf(j), policy.Units(n.radioMetrics()), n.now())
		}
	}
	n.s.at(time.Duration(n.s.rng.Int64N(int64(tick))), n.tick)
}

func (n *node) radioMetrics() policy.LinkMetrics {
	m := policy.LinkMetrics{BitsPerSecond: n.s.lora.BitRate(), Latency: n.s.loraAir(64), Loss: n.s.sc.LoRaLoss, Radio: true}
	if n.radio != nil {
		m.AirtimeLeft = float64(n.radio.budget.Left(n.now())) / float64(n.radio.budget.Burst)
	}
	return m
}

// reach reports whether neighbour j can be reached now by some medium.
func (n *node) reach(j int) bool {
	if !n.up || !n.s.nodes[j].up {
		return false
	}
	for _, l := range n.links {
		if l.other(n.idx) == j && n.s.linkUp(l) {
			return true
		}
	}
	return n.radio != nil && n.rup[j]
}

func (n *node) upAddr(a bundle.Addr) bool { return n.reach(idxOf(a)) }

func (n *node) put(h *held) {
	if len(n.store) >= n.s.sc.StorageLimit {
		// Full: drop the oldest bundle held (never silently the new one).
		for len(n.order) > 0 {
			id := n.order[0]
			n.order = n.order[1:]
			if old := n.store[id]; old != nil && !old.inflight {
				n.drop(id)
				n.s.rep.StorageDrops++
				break
			}
		}
	}
	n.store[h.b.id] = h
	n.heldVer++
	n.byFrom[h.from]++
	n.order = append(n.order, h.b.id)
	n.peak = max(n.peak, len(n.store))
}

func (n *node) drop(id bundle.ID) {
	if h := n.store[id]; h != nil {
		n.byFrom[h.from]--
		delete(n.store, id)
		n.heldVer++
	}
}

// overQuota: the store is full and neighbour from already fills a
// quarter of it. Its next bundle is refused (no custody ack: it keeps the
// bundle), so one flooding neighbour cannot push out everyone else's.
func (n *node) overQuota(from int) bool {
	return len(n.store) >= n.s.sc.StorageLimit && n.byFrom[from] >= n.s.sc.StorageLimit/4
}

// compact removes dropped IDs from the order list now and then.
func (n *node) compact() {
	if len(n.order) < 2*len(n.store)+64 {
		return
	}
	out := n.order[:0]
	for _, id := range n.order {
		if n.store[id] != nil {
			out = append(out, id)
		}
	}
	n.order = out
}

// heldIDs lists held bundles in arrival order (deterministic).
//
// The list and its set (heldSet) are kept until the store changes, so a
// summary every 30 s on every link costs nothing while nothing moves;
// callers must not modify them (a change builds new ones).
func (n *node) heldIDs() []bundle.ID {
	if n.heldAt == n.heldVer {
		return n.heldList
	}
	n.compact()
	// Sized for the store up front: growing the set is most of the cost.
	out := make([]bundle.ID, 0, len(n.store))
	seen := make(map[bundle.ID]bool, len(n.store))
	for _, id := range n.order {
		if n.store[id] != nil && !seen[id] {
			seen[id] = true
			out = append(out, id)
		}
	}
	if len(out) == 0 {
		out = nil
	}
	n.heldList, n.heldSet, n.heldAt = out, seen, n.heldVer
	return out
}

// passedOn records that this node no longer holds id because custody
// moved on or it was delivered: summaries keep listing it (maxGone).
func (n *node) passedOn(id bundle.ID) {
	if n.goneSet[id] {
		return
	}
	n.goneSet[id] = true
	n.gone = append(n.gone, id)
	if len(n.gone) > maxGone {
		delete(n.goneSet, n.gone[0])
		n.gone = n.gone[1:]
	}
	n.goneVer++
}

// summaryIDs is what a Tern summary lists: the bundles held and those
// recently passed on, as a list and a set (cached like heldIDs; callers
// must not modify them). A neighbour offers only what is in neither, so
// a node that handed a bundle on is not sent it again by every other
// holder it meets: over seeds 1-8 of city100 that took data transmissions
// per delivery from 83 to 70 with delivery unchanged.
func (n *node) summaryIDs() ([]bundle.ID, map[bundle.ID]bool) {
	held := n.heldIDs()
	if n.sumAt == n.heldVer+n.goneVer && n.sumSet != nil {
		return n.sumList, n.sumSet
	}
	out := make([]bundle.ID, 0, len(held)+len(n.gone))
	set := make(map[bundle.ID]bool, len(held)+len(n.gone))
	for _, ids := range [][]bundle.ID{held, n.gone} {
		for _, id := range ids {
			if !set[id] {
				set[id] = true
				out = append(out, id)
			}
		}
	}
	n.sumList, n.sumSet, n.sumAt = out, set, n.heldVer+n.goneVer
	return out, set
}

func (n *node) deliver(b *simBundle) {
	if n.done[b.id] {
		n.s.rep.DupDeliveries++
		return
	}
	n.done[b.id] = true
	n.s.delivered(b)
	n.addReceipt(b.id)
}

func (n *node) originate(b *simBundle) {
	if !n.up {
		// A phone that is off cannot send: the message waits on it.
	}
	n.seen[b.id] = true
	switch n.s.proto {
	case Flood:
		n.flood(b, -1)
	case Epidemic:
		n.put(&held{b: b, from: -1})
		n.push(n.store[b.id])
	case Tern:
		if n.role == roleLiar {
			// A flooding liar pushes its junk at every neighbour.
			n.s.rep.JunkMade++
			for _, j := range n.neighbours() {
				n.s.rep.JunkSent++
				n.sendTo(j, &frame{kind: fData, b: b, copies: 1, size: b.size + headerBytes, class: b.class})
			}
			return
		}
		n.put(&held{b: b, copies: policy.DefaultCopies, from: -1, avoid: -1})
		n.process(n.store[b.id])
	}
}

func (n *node) tick() {
	if n.up {
		now := n.now()
		for _, id := range n.heldIDs() {
			if h := n.store[id]; h.b.expires <= n.s.now {
				n.drop(id)
				n.s.rep.Expired++
			}
		}
		switch n.s.proto {
		case Tern:
			n.table.Expire(now) // held bundles are processed below, every tick
			n.announce()
			if int(n.s.now/tick)%int(ternSummaryEvery/tick) == n.idx%int(ternSummaryEvery/tick) {
				// Anti-entropy on point-to-point links (cheap there; on
				// LoRa, routes ride the announces and summaries never go).
				for _, l := range n.links {
					if n.s.linkUp(l) {
						n.summary(l.other(n.idx))
					}
				}
			}
			for _, id := range n.heldIDs() {
				n.process(n.store[id])
			}
		case Epidemic:
			if int(n.s.now/tick)%int(antiEntropy/tick) == n.idx%int(antiEntropy/tick) {
				n.summaryAll()
			}
		}
	}
	n.s.at(tick, n.tick)
}

// sendTo puts a unicast frame to neighbour j on the cheapest usable medium.
func (n *node) sendTo(j int, f *frame) bool {
	var opts []policy.LinkMetrics
	var ls []*p2p
	for _, l := range n.links {
		if l.other(n.idx) == j && n.s.linkUp(l) {
			opts, ls = append(opts, l.m), append(ls, l)
		}
	}
	if n.radio != nil && n.rup[j] && n.s.nodes[j].up && !n.heldOffRadio(f) {
		opts, ls = append(opts, n.radioMetrics()), append(ls, nil)
	}
	class := f.class
	if f.kind != fData {
		class = policy.Control
	}
	k := policy.Choose(opts, nil, class, f.size, false)
	if k < 0 {
		return false
	}
	f.to = j
	if ls[k] == nil {
		return n.s.sendLoRa(n.idx, f)
	}
	n.s.sendP2P(n.idx, ls[k], f)
	return true
}

func (n *node) linkEvent(l *p2p, up bool) {
	j := l.other(n.idx)
	n.neighbourEvent(j, up, l)
}

func (n *node) radioNeighbour(j int, up bool) {
	if up {
		n.rup[j] = true
	}
	n.neighbourEvent(j, up, nil)
}

func (n *node) neighbourEvent(j int, up bool, l *p2p) {
	switch n.s.proto {
	case Tern:
		now := n.now()
		if up {
			m := n.radioMetrics()
			if l != nil {
				m = l.m
			}
			n.table.NeighbourUp(addrOf(j), policy.Units(m), now)
			if l != nil {
				n.announceOn(l)
				n.summary(j)
			}
		} else if !n.reach(j) {
			n.table.NeighbourDown(addrOf(j), now)
			for _, id := range n.heldIDs() {
				if h := n.store[id]; h.inflight && h.to == j {
					h.inflight = false
				}
			}
		}
	case Epidemic:
		if up {
			n.summary(j)
		}
	}
}

// overhear handles a LoRa frame addressed to someone else.
func (n *node) overhear(from int, f *frame) {
	n.rup[from] = true
}

func (n *node) receive(from int, l *p2p, f *frame) {
	if !n.up {
		return
	}
	if l == nil {
		n.rup[from] = true
	}
	switch n.s.proto {
	case Flood:
		if f.kind == fData {
			n.onFlood(from, f.b)
		}
	case Epidemic:
		n.onEpidemic(from, f)
	case Tern:
		n.onTern(from, l, f)
	}
}

// --- flooding ---

func (n *node) onFlood(from int, b *simBundle) {
	if n.seen[b.id] {
		return
	}
	n.seen[b.id] = true
	if b.dst == n.idx {
		n.deliver(b)
		return
	}
	if n.role == roleLiar || b.expires <= n.s.now {
		return
	}
	n.flood(b, from)
}

func (n *node) flood(b *simBundle, from int) {
	if !n.up {
		return
	}
	for _, l := range n.links {
		if j := l.other(n.idx); j != from && n.s.linkUp(l) {
			n.s.sendP2P(n.idx, l, &frame{kind: fData, to: j, b: b, size: b.size + headerBytes, class: b.class})
		}
	}
	if n.radio != nil {
		n.s.sendLoRa(n.idx, &frame{kind: fData, to: -1, b: b, size: b.size + headerBytes, class: b.class})
	}
}

// --- epidemic ---

func (n *node) onEpidemic(from int, f *frame) {
	switch f.kind {
	case fData:
		b := f.b
		n.known[nbrKey{from, b.id}] = true
		if n.seen[b.id] || b.expires <= n.s.now {
			return
		}
		n.seen[b.id] = true
		if b.dst == n.idx {
			n.deliver(b)
			return
		}
		if n.role == roleLiar {
			return
		}
		n.put(&held{b: b, from: from})
		n.push(n.store[b.id])
	case fSummary:
		has := map[bundle.ID]bool{}
		for _, id := range f.ids {
			has[id] = true
			n.known[nbrKey{from, id}] = true
		}
		for _, id := range policy.Missing(n.heldIDs(), func(id bundle.ID) bool { return has[id] || n.known[nbrKey{from, id}] }) {
			n.copyTo(from, n.store[id])
		}
	}
}

func (n *node) neighbours() []int {
	var out []int
	seen := map[int]bool{}
	for _, l := range n.links {
		if j := l.other(n.idx); n.s.linkUp(l) && !seen[j] {
			seen[j] = true
			out = append(out, j)
		}
	}
	if n.radio != nil {
		for _, j := range n.radio.nbrs {
			if n.rup[j] && n.s.nodes[j].up && !seen[j] {
				seen[j] = true
				out = append(out, j)
			}
		}
	}
	return out
}

func (n *node) push(h *held) {
	if !n.up || h == nil {
		return
	}
	for _, j := range n.neighbours() {
		if j != h.from && !n.known[nbrKey{j, h.b.id}] {
			n.copyTo(j, h)
		}
	}
}

func (n *node) copyTo(j int, h *held) {
	if h == nil || h.b.expires <= n.s.now {
		return
	}
	n.known[nbrKey{j, h.b.id}] = true
	n.sendTo(j, &frame{kind: fData, b: h.b, size: h.b.size + headerBytes, class: h.b.class})
}

func (n *node) summaryAll() {
	for _, j := range n.neighbours() {
		n.summary(j)
	}
}

// summary sends the IDs held (and, for Tern, recent receipts): IDs first,
// the neighbour answers with what it lacks.
func (n *node) summary(j int) {
	ids, set := n.heldIDs(), n.heldSet
	var rcpts []bundle.ID
	if n.s.proto == Tern {
		// Tern's summaries also list what was passed on and carry every
		// delivery receipt known, as the daemon's full summary
		// (router/summary.go). An empty one is sent too: it tells the
		// neighbour to offer everything.
		ids, set = n.summaryIDs()
		rcpts = n.rcpts
	}
	n.sendTo(j, &frame{kind: fSummary, ids: ids, idSet: set, rcpts: rcpts, rseq: n.rcptSeq,
		size: headerBytes + idBytes*(len(ids)+len(rcpts))})
}

// heldOffRadio mirrors the daemon's rule (router/bulk.go): the scenario's
// bulk messages are files (bundle.FlagBulk), which Tern never puts on a
// radio. Epidemic and flooding have no such rule.
func (n *node) heldOffRadio(f *frame) bool {
	return n.s.proto == Tern && f.kind == fData && f.class == policy.Bulk
}
