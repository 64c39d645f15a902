package node

import (
	"bytes"
	"context"
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/ternmesh/tern/crypto"
)

// LANPeer is a node announced on the local network (by mDNS): its claimed
// address and where it says it listens. Nothing here is trusted: links are
// dialled pinned to Addr, so an announcement that points at someone else
// fails the identity check and never yields a link.
type LANPeer struct {
	Addr      crypto.Address
	Endpoints []netip.AddrPort
}

// DiscoveryConfig tunes how discovered peers become links. Zero values
// mean the defaults.
type DiscoveryConfig struct {
	// Announcing says whether this node announces itself too. When both
	// ends announce, only the one with the lower address dials at first,
	// so a pair gets one link rather than two.
	Announcing bool
	// Fallback is how long the higher address waits for the lower one's
	// link before dialling itself; default 3 s.
	Fallback time.Duration
	// DialTimeout is how long a dial may stay down before the next
	// announced address is tried (or the same one afresh); default 5 s.
	DialTimeout time.Duration
	// Grace is how long a departed peer's link is kept, in case it was
	// only a missed announcement; default 10 s.
	Grace time.Duration
	// BadFor is how long an address that failed the identity check is
	// skipped; default 10 min.
	BadFor time.Duration
	// Tick is how often links are checked; default 250 ms.
	Tick time.Duration
}

// Discovery turns discovered LAN peers into router links. One neighbour
// per node address however many addresses it is seen on; the links are
// not saved (they come back by themselves when the peer is seen again).
type Discovery struct {
	n   *Node
	cfg DiscoveryConfig

	mu    sync.Mutex
	peers map[crypto.Address]*lanPeer
}

type lanPeer struct {
	addr      crypto.Address
	endpoints []netip.AddrPort
	bad       map[netip.AddrPort]time.Time // failed the pin until then
	goneAt    time.Time                    // zero while announced
	downSince time.Time                    // zero while a link is up
	url       string                       // our dial, "" when none
	ep        netip.AddrPort
	dialedAt  time.Time
	next      int // rotation over endpoints
}

// NewDiscovery returns the discovery manager of a started node; feed it
// with Seen and Gone and run it with Run.
func (n *Node) NewDiscovery(cfg DiscoveryConfig) *Discovery {
	if cfg.Fallback <= 0 {
		cfg.Fallback = 3 * time.Second
	}
	if cfg.DialTimeout <= 0 {
		cfg.DialTimeout = 5 * time.Second
	}
	if cfg.Grace <= 0 {
		cfg.Grace = 10 * time.Second
	}
	if cfg.BadFor <= 0 {
		cfg.BadFor = 10 * time.Minute
	}
	if cfg.Tick <= 0 {
		cfg.Tick = 250 * time.Millisecond
	}
	return &Discovery{n: n, cfg: cfg, peers: map[crypto.Address]*lanPeer{}}
}

// Seen reports a peer announced now, with all its current endpoints.
func (d *Discovery) Seen(p LANPeer) {
	if p.Addr == d.n.id.Address() || p.Addr.IsZero() {
		return
	}
	d.mu.Lock()
	lp := d.peers[p.Addr]
	if lp == nil {
		lp = &lanPeer{addr: p.Addr, bad: map[netip.AddrPort]time.Time{}, downSince: d.n.cfg.Now()}
		d.peers[p.Addr] = lp
	}
	lp.endpoints = slices.Clone(p.Endpoints)
	lp.goneAt = time.Time{}
	d.mu.Unlock()
	d.check()
}

// Gone reports that a peer is no longer announced; its link is closed
// after the grace period unless it is seen again.
func (d *Discovery) Gone(addr crypto.Address) {
	d.mu.Lock()
	if lp := d.peers[addr]; lp != nil && lp.goneAt.IsZero() {
		lp.goneAt = d.n.cfg.Now()
	}
	d.mu.Unlock()
	d.check()
}

// URLs lists the links discovery keeps now.
func (d *Discovery) URLs() []string {
	d.mu.Lock()
	defer d.mu.Unlock()
	var out []string
	for _, lp := range d.peers {
		if lp.url != "" {
			out = append(out, lp.url)
		}
	}
	slices.Sort(out)
	return out
}

// Run checks the links every Tick until ctx ends, then closes them.
func (d *Discovery) Run(ctx context.Context) {
	t := time.NewTicker(d.cfg.Tick)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			d.mu.Lock()
			for _, lp := range d.peers {
				if lp.url != "" {
					d.n.router.Disconnect(lp.url)
					lp.url = ""
				}
			}
			d.mu.Unlock()
			return
		case <-t.C:
			d.check()
		}
	}
}

// check brings every peer's link in line with what is announced.
func (d *Discovery) check() {
	r := d.n.router
	if r == nil {
		return
	}
	now := d.n.cfg.Now()
	dials := map[string]string{} // url -> state + error
	up := map[string]bool{}      // neighbour hex -> a link is up
	for _, pi := range r.Peers() {
		if pi.URL != "" {
			dials[pi.URL] = pi.State + " " + pi.Error
		}
		if pi.State == "up" && pi.Neighbour != "" {
			up[pi.Neighbour] = true
		}
	}
	self := d.n.id.Address()
	d.mu.Lock()
	defer d.mu.Unlock()
	for a, lp := range d.peers {
		hexAddr := a.String()
		if !lp.goneAt.IsZero() {
			if now.Sub(lp.goneAt) >= d.cfg.Grace {
				d.drop(lp, "the peer left the LAN")
				delete(d.peers, a)
			}
			continue
		}
		if up[hexAddr] {
			lp.downSince = time.Time{}
		} else if lp.downSince.IsZero() {
			lp.downSince = now
		}
		if lp.url != "" {
			st := dials[lp.url]
			switch {
			case strings.HasPrefix(st, "up"):
				continue
			case strings.Contains(st, hexAddr):
				// The pin error names the identity we wanted: whoever
				// answers at this address is someone else.
				d.n.log.Warn("LAN peer failed the identity check: the announcement points at another node (spoofed or stale); not connecting there",
					"peer", hexAddr, "endpoint", lp.ep.String(), "err", strings.TrimSpace(strings.TrimPrefix(st, "down")))
				lp.bad[lp.ep] = now.Add(d.cfg.BadFor)
				d.drop(lp, "")
				lp.next++
			case !slices.Contains(lp.endpoints, lp.ep):
				d.drop(lp, "")
			case up[hexAddr]:
				// Linked the other way round: one link per neighbour.
				d.drop(lp, "")
			case now.Sub(lp.dialedAt) >= d.cfg.DialTimeout:
				d.drop(lp, "")
				lp.next++
			default:
				continue
			}
		}
		if up[hexAddr] {
			continue
		}
		if d.cfg.Announcing && bytes.Compare(self[:], a[:]) > 0 && now.Sub(lp.downSince) < d.cfg.Fallback {
			continue // the lower address dials first
		}
		var cands []netip.AddrPort
		for _, ep := range lp.endpoints {
			if until, ok := lp.bad[ep]; ok && now.Before(until) {
				continue
			}
			cands = append(cands, ep)
		}
		if len(cands) == 0 {
			continue
		}
		ep := cands[lp.next%len(cands)]
		u := fmt.Sprintf("quic://%s?id=%s", ep, hexAddr)
		if err := r.Connect(u, nil); err != nil {
			d.n.log.Warn("cannot connect a LAN peer", "url", u, "err", err)
			continue
		}
		lp.url, lp.ep, lp.dialedAt = u, ep, now
		d.n.log.Info("connecting a LAN peer", "peer", hexAddr, "url", u)
	}
}

// drop closes a peer's dial, if any; why, when set, is logged.
func (d *Discovery) drop(lp *lanPeer, why string) {
	if lp.url == "" {
		return
	}
	d.n.router.Disconnect(lp.url)
	if why != "" {
		d.n.log.Info("closed a LAN link", "peer", lp.addr.String(), "url", lp.url, "why", why)
	}
	lp.url = ""
}
