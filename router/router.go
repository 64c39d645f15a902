// Package router decides what happens to every bundle: deliver it locally,
// forward it to a neighbour, or hold it in the durable store until a path
// appears (delay-tolerant store-and-forward).
//
// Custody is hop by hop: a bundle leaves a node's store only after the next
// hop has answered with a custody ack, which it sends only once the bundle is
// on its own disk. Routes come from directly connected neighbours and from
// their announces: router/policy's distance vector, whose metric counts the
// cost of each link (rate, latency, loss, radio or not), with split horizon
// and the feasibility condition for loop freedom. Each bundle takes the
// cheapest link its class may use (policy.Cost: chat the fastest path,
// bulk off a radio low on airtime, encrypted data never on an amateur
// link). A route that is no longer advertised turns stale but is kept for
// a while: the neighbour that last reached a destination is the best
// custodian to wait with.
//
// When no path exists, neighbours exchange summaries on contact and spread
// a few copies of what waits (spray-and-wait with a copy budget kept in the
// store); delivery receipts ride the summaries and clear the spare copies
// (dtn.go). Routes through a neighbour whose bundles never get delivered
// lose preference (policy.Reputation), and each neighbour's bundles are
// rate-limited on the way in (policy.Limiter): what is over its rate gets
// no custody ack, so the neighbour keeps it and retries. A neighbour that
// keeps sending past its limit is judged flooding (policy.FloodWatch) and
// routed round until it has been quiet for 10 minutes.
//
// The router imports links (package transports) and the store; no link
// imports the router.
package router

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"sync"
	"time"

	"github.com/ternmesh/tern/bundle"
	"github.com/ternmesh/tern/router/policy"
	"github.com/ternmesh/tern/store"
	"github.com/ternmesh/tern/transports"
)

// ErrRejected marks a local delivery that failed for good (forged, replayed,
// not for us). Deliver wraps it; the bundle is then dropped and counted.
var ErrRejected = errors.New("bundle rejected")

// Config wires a router. Self, Store and Deliver are required.
type Config struct {
	Self  bundle.Addr
	Store *store.Store
	// Deliver hands a bundle addressed to this node to the local
	// applications. It must be idempotent (after a crash a bundle may be
	// delivered again) and return only once the result is durable. An
	// error wrapping ErrRejected drops the bundle; any other error leaves it
	// stored and delivery is retried.
	Deliver func(ctx context.Context, b *bundle.Bundle) error
	// Events, if set, is told when a locally originated bundle was taken
	// into custody by a neighbour. It must not block.
	Events func(Event)
	// Dialers by URL scheme, for Connect.
	Dialers map[string]transports.Dialer
	Now     func() time.Time
	Rand    io.Reader
	Logger  *slog.Logger

	AnnounceInterval time.Duration // default 30 s
	RetryMin         time.Duration // first custody timeout, default 5 s
	RetryMax         time.Duration // longest backoff, default 2 min
	Window           int           // bundles in flight per neighbour, default 1024
	RouteTTL         time.Duration // how long a stale route is kept, default 24 h
	ExpireInterval   time.Duration // how often expired bundles are dropped, default 10 s

	// AnnounceMax is the longest gap between two announces to a neighbour
	// while what it would hear stays the same: the gap doubles from
	// AnnounceInterval up to this (pace.go). Default 10 min; at most
	// 20 min (a third of the hour any node keeps a route live without
	// hearing it again), at least AnnounceInterval.
	AnnounceMax time.Duration
	// AnnounceHold paces announces of changed routes to a neighbour: a
	// change is announced at once, but after a burst of twenty at most one
	// goes per AnnounceHold. Default 1 s.
	AnnounceHold time.Duration

	// Ingress rate limits per neighbour, in bundles per second with a
	// burst, over links that are not radios (default 30,000/s, burst
	// 60,000: far above what a heavy user sends, so only a flood is held
	// back) and over radios (default 5/s, burst 100: more than a LoRa or
	// packet-radio channel carries). Bundles over the rate get no custody
	// ack: the neighbour keeps them and sends them again later.
	IngressRate, IngressBurst           float64
	RadioIngressRate, RadioIngressBurst float64
	// SummaryDelay gathers new delivery receipts into one note per
	// neighbour, default 1 s.
	SummaryDelay time.Duration
	// ReceiptTimeout is how long a bundle handed over on a live route may
	// go without a delivery receipt before the neighbour is judged for it
	// and the originator's hedge goes out another way, default 5 min.
	ReceiptTimeout time.Duration
	// HedgeFor is how long an originator keeps the hedge of a bundle
	// without a receipt, default 1 h.
	HedgeFor time.Duration

	// after, if set, replaces time.After in the announce loop (tests run
	// it on a virtual clock, with Now).
	after func(time.Duration) <-chan time.Time
}

// Event reports progress of a locally originated bundle.
type Event struct {
	Kind      string // "forwarded"
	ID        bundle.ID
	Neighbour bundle.Addr
	// Medium is the kind of link that carried the bundle to Neighbour
	// (transports.Medium*; "" when unknown).
	Medium string
}

// Router is the forwarding engine of one node.
type Router struct {
	cfg     Config
	log     *slog.Logger
	table   *table
	m       *metrics
	ingress *ingress
	dtn     *dtnState

	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup

	mu    sync.Mutex
	nbrs  map[bundle.Addr]*neighbour
	dials map[string]*dialState

	localWake   chan struct{}
	changed     chan struct{}
	unrouted    chan struct{} // a bundle was stored with no next hop
	notes       chan struct{} // new receipts to pass on (notesLoop)
	announceSeq uint64        // numbers announces (bundle.Announce.Seq)
	origins     *recentIDs
	voice       voiceState // live voice datagram relay (voice.go)

	savedShape string    // routes and hops last written (persist.go)
	savedAt    time.Time // when
}

// New starts a router. Close stops it.
func New(cfg Config) (*Router, error) {
	if cfg.Store == nil || cfg.Deliver == nil {
		return nil, errors.New("router: Store and Deliver are required")
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Rand == nil {
		cfg.Rand = rand.Reader
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	def := func(d *time.Duration, v time.Duration) {
		if *d <= 0 {
			*d = v
		}
	}
	def(&cfg.AnnounceInterval, 30*time.Second)
	def(&cfg.AnnounceMax, 10*time.Minute)
	def(&cfg.AnnounceHold, time.Second)
	cfg.AnnounceMax = announceMax(cfg)
	if cfg.after == nil {
		cfg.after = time.After
	}
	def(&cfg.RetryMin, 5*time.Second)
	def(&cfg.RetryMax, 2*time.Minute)
	def(&cfg.RouteTTL, 24*time.Hour)
	def(&cfg.ExpireInterval, 10*time.Second)
	def(&cfg.SummaryDelay, time.Second)
	def(&cfg.ReceiptTimeout, 5*time.Minute)
	def(&cfg.HedgeFor, time.Hour)
	deff := func(f *float64, v float64) {
		if *f <= 0 {
			*f = v
		}
	}
	deff(&cfg.IngressRate, 30000)
	deff(&cfg.IngressBurst, 60000)
	deff(&cfg.RadioIngressRate, 5)
	deff(&cfg.RadioIngressBurst, 100)
	if cfg.Window <= 0 {
		cfg.Window = 1024
	}
	ctx, cancel := context.WithCancel(context.Background())
	// A learned route stays live without a new announce for four announce
	// intervals, and at least an hour (minRouteLife): over a radio the 3 %
	// control budget may hold announces back for many minutes, announces
	// of unchanged routes back off to AnnounceMax (pace.go), and every
	// announce withdraws what it no longer lists anyway. A destination
	// that lost every loop-free route waits two intervals before longer
	// routes count as loop-free again (meanwhile they are used, not
	// announced: nextHop).
	tcfg := policy.TableConfig{LiveFor: max(4*cfg.AnnounceInterval, minRouteLife), StaleFor: cfg.RouteTTL, HoldDown: 2 * cfg.AnnounceInterval}
	r := &Router{
		cfg: cfg, log: cfg.Logger.With("component", "router"),
		table: newTable(cfg.Self, tcfg, policy.NewReputation(), cfg.Now), m: newMetrics(),
		ingress: newIngress(cfg),
		dtn:     newDTN(),
		ctx:     ctx, cancel: cancel,
		nbrs: make(map[bundle.Addr]*neighbour), dials: make(map[string]*dialState),
		localWake: make(chan struct{}, 1), changed: make(chan struct{}, 1),
		unrouted: make(chan struct{}, 1), notes: make(chan struct{}, 1),
		origins: newRecentIDs(1 << 16),
	}
	r.loadRoutes()
	r.loadReceipts()
	r.wg.Add(4)
	go r.localLoop()
	go r.announceLoop()
	go r.expireLoop()
	go r.notesLoop()
	wake(r.localWake)
	return r, nil
}

// Close stops every loop and closes every link. Stored bundles stay stored.
func (r *Router) Close() error {
	r.cancel()
	r.mu.Lock()
	for _, n := range r.nbrs {
		n.closeLinks()
	}
	r.mu.Unlock()
	r.wg.Wait()
	r.saveRoutes()
	r.saveReceipts()
	return nil
}

func wake(c chan struct{}) {
	select {
	case c <- struct{}{}:
	default:
	}
}

// Submit takes a locally originated bundle into the store (durably) and
// queues it toward its destination. When Submit returns nil the bundle is on
// disk: it will be sent when a path exists, until its lifetime ends.
func (r *Router) Submit(b *bundle.Bundle) error {
	raw, err := b.Marshal()
	if err != nil {
		return fmt.Errorf("submit: %w", err)
	}
	now := r.cfg.Now()
	rec := store.Record{
		ID: b.ID, Dest: b.Dest, Raw: raw,
		Received: now.UnixMilli(), Expires: now.Add(b.Remaining(0)).UnixMilli(),
	}
	if b.Dest == r.cfg.Self {
		rec.NextHop = r.cfg.Self
	} else {
		rec.NextHop, _, _ = r.route(b.Dest, bundle.Addr{}, cargoOfBundle(b, len(raw)))
		rec.Copies = submitCopies(b.Kind)
	}
	if err := r.cfg.Store.Put(rec)[0]; err != nil {
		return fmt.Errorf("submit bundle %s: %w", b.ID, err)
	}
	r.m.total.stored.Add(1)
	r.wakeHop(rec.NextHop)
	if rec.NextHop == (bundle.Addr{}) {
		wake(r.unrouted)
	}
	return nil
}

// wakeHop tells whoever serves next hop h that it has work.
func (r *Router) wakeHop(h bundle.Addr) {
	if h == r.cfg.Self {
		wake(r.localWake)
		return
	}
	if h == (bundle.Addr{}) {
		return
	}
	r.mu.Lock()
	n := r.nbrs[h]
	r.mu.Unlock()
	if n != nil {
		wake(n.wake)
	}
}

// route chooses the next hop for a bundle of kind k and size bytes to
// dest, never back to from (table.nextHop): live routes through a
// neighbour with a link that may carry the bundle's class now (policy.Cost),
// cheapest first; otherwise the custodian to wait with. A neighbour
// reachable only over clear-only (amateur) links is no next hop for an
// encrypted data bundle. live reports a live route.
func (r *Router) route(dest, from bundle.Addr, c cargo) (nh bundle.Addr, live, ok bool) {
	_, enc := classOf(c.kind, c.size)
	usable := func(a bundle.Addr) bool {
		r.mu.Lock()
		n := r.nbrs[a]
		r.mu.Unlock()
		return n != nil && n.usable(c)
	}
	banned := func(a bundle.Addr) bool {
		if !enc {
			return false
		}
		r.mu.Lock()
		n := r.nbrs[a]
		r.mu.Unlock()
		return n != nil && n.clearOnly()
	}
	return r.table.nextHop(dest, from, usable, banned)
}

func (r *Router) isUp(a bundle.Addr) bool {
	r.mu.Lock()
	n := r.nbrs[a]
	r.mu.Unlock()
	return n != nil && n.up()
}

// PathProblem explains why a bundle of kind k to dest has no usable next
// hop now, or returns "" when it has one (or simply no route yet).
func (r *Router) PathProblem(dest bundle.Addr, k bundle.Kind) string {
	if k != bundle.KindData {
		return ""
	}
	if _, _, ok := r.route(dest, bundle.Addr{}, cargo{kind: k}); ok {
		return ""
	}
	if _, _, ok := r.route(dest, bundle.Addr{}, cargo{kind: bundle.KindClearSigned}); ok {
		return "the only path now is an amateur-radio link, where encryption is forbidden: the message waits for another path (send it with --over-air-clear to allow a signed, unencrypted copy)"
	}
	return ""
}

// routesChanged schedules a reroute of held bundles and an early announce.
func (r *Router) routesChanged() { wake(r.changed) }

// reroute moves held bundles to a better next hop: unrouted bundles that
// now have a route; bundles queued for a neighbour that is down, up only
// over clear-only links, or up but penalised now (a poor delivery-receipt
// reputation, or judged flooding: table.penalised), when their route now
// leads through another neighbour that is up (those whose best route is
// still the penalised neighbour stay queued for it); and parked hedges
// that now have a live route through a neighbour not yet given them. Then
// it offers what is left unrouted to the radios (airSpray).
func (r *Router) reroute() {
	st := r.cfg.Store
	// move routes recs (queued for current) anew and returns those it
	// left where they were.
	move := func(recs []store.Record, current bundle.Addr) (stay []store.Record) {
		byHop := map[bundle.Addr][]bundle.ID{}
		for _, rec := range recs {
			if nh, _, ok := r.route(rec.Dest, rec.From, cargoOf(rec.Raw)); ok && nh != current && (current == (bundle.Addr{}) || r.isUp(nh)) {
				byHop[nh] = append(byHop[nh], rec.ID)
			} else {
				stay = append(stay, rec)
			}
		}
		r.moveTo(byHop)
		return stay
	}
	var unrouted []store.Record
	if recs, err := st.Unrouted(4096); err == nil {
		unrouted = move(recs, bundle.Addr{})
	}
	if recs, err := st.ForNextHop(parked(), 4096); err == nil {
		byHop := map[bundle.Addr][]bundle.ID{}
		for _, rec := range recs {
			if nh, ok := r.hedgeHop(rec, false); ok {
				byHop[nh] = append(byHop[nh], rec.ID)
				r.dtn.resent.Add(1)
			}
		}
		r.moveTo(byHop)
	}
	r.mu.Lock()
	var off, up []bundle.Addr // queues to route anew; neighbours up
	for a, n := range r.nbrs {
		// Down, or up only over clear-only links (encrypted bundles
		// queued there cannot leave that way).
		if !n.up() || n.clearOnly() {
			off = append(off, a)
		} else {
			up = append(up, a)
		}
	}
	r.mu.Unlock()
	// Up but penalised: new bundles already route round it, and so do
	// those queued for it. Asked only now r.mu is released: the table's
	// lock is taken before r.mu (route), never under it.
	for _, a := range up {
		if r.table.penalised(a) {
			off = append(off, a)
		}
	}
	for _, a := range off {
		if recs, err := st.ForNextHop(a, 4096); err == nil {
			move(recs, a)
		}
	}
	r.airSpray(unrouted) // what is still unrouted may go on the air (air.go)
}

// announceLoop runs a round every AnnounceInterval and on every route
// change: reroute (the safety net: nothing waits longer than one
// interval), route expiry, link costs, announces where due (pace.go) and
// full summaries (anti-entropy). Between rounds it wakes when a paced
// announce falls due.
func (r *Router) announceLoop() {
	defer r.wg.Done()
	tick := r.cfg.Now().Add(r.cfg.AnnounceInterval)
	for {
		at := tick
		if p := r.paceAt(); !p.IsZero() && p.Before(at) {
			at = p
		}
		select {
		case <-r.ctx.Done():
			return
		case <-r.cfg.after(at.Sub(r.cfg.Now())):
			now := r.cfg.Now()
			if now.Before(tick) {
				r.announceAll(now) // only a paced announce is due
				continue
			}
			tick = now.Add(r.cfg.AnnounceInterval)
			r.reroute() // safety net: nothing waits longer than one interval
		case <-r.changed:
			r.reroute()
		case <-r.unrouted:
			// A bundle stored without a next hop may have raced a route
			// that appeared between its routing decision and its write:
			// route it again now that it is on disk. No announce needed.
			r.reroute()
			continue
		}
		r.round(r.cfg.Now())
	}
}

// round expires routes, refreshes link costs, and offers every neighbour
// an announce (paced) and a full summary.
func (r *Router) round(now time.Time) {
	nbrs := r.neighbours()
	changed := r.table.expire(now)
	for _, n := range nbrs {
		// Link costs move (round trips, airtime): refresh each
		// neighbour's direct metric.
		if u := n.units(); u > 0 && r.table.neighbourUp(n.addr, u, now) {
			changed = true
		}
	}
	if changed {
		r.reroute()
	}
	r.saveRoutes()
	for _, n := range nbrs {
		if l := n.link(); l != nil {
			r.announce(n, l, now, false)
			n.mu.Lock()
			speaks := n.speaks
			n.mu.Unlock()
			if speaks {
				r.sendSummary(n, true) // anti-entropy
			}
		}
	}
}

func (r *Router) expireLoop() {
	defer r.wg.Done()
	t := time.NewTicker(r.cfg.ExpireInterval)
	defer t.Stop()
	for {
		select {
		case <-r.ctx.Done():
			return
		case <-t.C:
			r.ExpireNow()
			r.judgeDue(r.cfg.Now())
		}
	}
}

// ExpireNow drops every stored bundle whose lifetime has ended.
func (r *Router) ExpireNow() int {
	n, err := r.cfg.Store.Expire()
	if err != nil {
		r.log.Error("expiring bundles failed", "err", err)
	}
	if n > 0 {
		r.m.total.expired.Add(uint64(n))
		r.log.Info("dropped expired bundles", "count", n)
	}
	return n
}

// Metrics returns the counters and store usage.
func (r *Router) Metrics() Metrics {
	s := Metrics{Total: r.m.total.snapshot(), ByNeighbour: map[string]Counters{}, Rejected: map[string]uint64{}}
	r.m.mu.Lock()
	for a, c := range r.m.per {
		s.ByNeighbour[addrString(a)] = c.snapshot()
	}
	r.m.mu.Unlock()
	r.m.reasons.Range(func(k, v any) bool {
		s.Rejected[k.(string)] = v.(interface{ Load() uint64 }).Load()
		return true
	})
	st := r.cfg.Store.Stats()
	s.StoredNow, s.StoredBytes = st.Bundles, st.Bytes
	s.Voice = r.VoiceMetrics()
	s.DTN = r.dtnMetrics()
	return s
}

// Routes lists the route table.
func (r *Router) Routes() []RouteInfo { return r.table.list() }

func addrString(a bundle.Addr) string { return fmt.Sprintf("%x", a[:]) }
