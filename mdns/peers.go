package mdns

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"slices"
	"time"
)

// Peer is a node found on the local network.
type Peer struct {
	Addr     [16]byte     // node address, from TXT id
	Port     int          // QUIC port, from TXT port
	CardHash [8]byte      // from TXT card
	IPs      []netip.Addr // every address it answered from recently, sorted
	Instance string       // DNS-SD instance name, for logs
}

// Endpoints lists the UDP addresses to dial, one per IP.
func (p Peer) Endpoints() []netip.AddrPort {
	out := make([]netip.AddrPort, 0, len(p.IPs))
	for _, ip := range p.IPs {
		out = append(out, netip.AddrPortFrom(ip, uint16(p.Port)))
	}
	return out
}

// EventKind says what happened to a peer.
type EventKind int

// The event kinds.
const (
	Appeared EventKind = iota + 1 // first seen
	Changed                       // new port, card or set of addresses
	Left                          // no answer refreshed it in time
)

func (k EventKind) String() string {
	switch k {
	case Appeared:
		return "appeared"
	case Changed:
		return "changed"
	case Left:
		return "left"
	}
	return "unknown"
}

// Event reports a change in the set of peers.
type Event struct {
	Kind EventKind
	Peer Peer
}

// answer is one service instance as the browser resolved it.
type answer struct {
	instance string
	srvPort  int
	txt      []string
	ips      []net.IP
	ttl      uint32 // seconds
}

// errSelf marks our own announcement coming back to us.
var errSelf = errors.New("it is this node's own announcement")

// maxIPs bounds the addresses one answer may carry.
const maxIPs = 16

// check validates an answer and turns it into a Peer.
func check(a answer, self [16]byte) (Peer, error) {
	if len(a.instance) > 255 {
		return Peer{}, fmt.Errorf("instance name is %d bytes, at most 255 allowed", len(a.instance))
	}
	rec, err := ParseTXT(a.txt)
	if err != nil {
		return Peer{}, err
	}
	if rec.Addr == self {
		return Peer{}, errSelf
	}
	if a.srvPort != rec.Port {
		return Peer{}, fmt.Errorf("SRV port %d and TXT port %d disagree", a.srvPort, rec.Port)
	}
	if len(a.ips) > maxIPs {
		return Peer{}, fmt.Errorf("answer carries %d addresses, at most %d allowed", len(a.ips), maxIPs)
	}
	p := Peer{Addr: rec.Addr, Port: rec.Port, CardHash: rec.CardHash, Instance: a.instance}
	for _, ip := range a.ips {
		ad, ok := netip.AddrFromSlice(ip)
		if !ok {
			continue
		}
		ad = ad.Unmap()
		// A link-local IPv6 address is useless without its zone, which
		// mDNS answers do not carry.
		if !ad.IsValid() || ad.IsUnspecified() || ad.IsMulticast() || ad.IsLoopback() ||
			ad.Is6() && ad.IsLinkLocalUnicast() || ad == netip.AddrFrom4([4]byte{255, 255, 255, 255}) {
			continue
		}
		if !slices.Contains(p.IPs, ad) {
			p.IPs = append(p.IPs, ad)
		}
	}
	if len(p.IPs) == 0 {
		return Peer{}, errors.New("answer carries no usable IP address")
	}
	slices.SortFunc(p.IPs, func(x, y netip.Addr) int { return x.Compare(y) })
	return p, nil
}

// tracker keeps the current set of peers and turns answers and the passing
// of time into events. It is not safe for concurrent use.
type tracker struct {
	stale    time.Duration
	maxPeers int
	peers    map[[16]byte]*tracked
}

type tracked struct {
	peer   Peer
	expiry map[netip.Addr]time.Time
}

func newTracker(stale time.Duration, maxPeers int) *tracker {
	return &tracker{stale: stale, maxPeers: maxPeers, peers: map[[16]byte]*tracked{}}
}

// observe records a checked peer seen at now with the answer's TTL.
func (t *tracker) observe(p Peer, ttl uint32, now time.Time) (Event, bool, error) {
	life := t.stale
	if d := time.Duration(ttl) * time.Second; d < life {
		life = d
	}
	tr := t.peers[p.Addr]
	if tr == nil {
		if len(t.peers) >= t.maxPeers {
			return Event{}, false, fmt.Errorf("already tracking %d peers, the most allowed", t.maxPeers)
		}
		tr = &tracked{peer: p, expiry: map[netip.Addr]time.Time{}}
		for _, ip := range p.IPs {
			tr.expiry[ip] = now.Add(life)
		}
		t.peers[p.Addr] = tr
		return Event{Kind: Appeared, Peer: clonePeer(tr.peer)}, true, nil
	}
	changed := tr.peer.Port != p.Port || tr.peer.CardHash != p.CardHash
	if tr.peer.Port != p.Port {
		// The old addresses were for the old port: start afresh.
		clear(tr.expiry)
	}
	for _, ip := range p.IPs {
		if _, ok := tr.expiry[ip]; !ok {
			if len(tr.expiry) >= maxIPs {
				continue
			}
			changed = true
		}
		tr.expiry[ip] = now.Add(life)
	}
	tr.peer.Port, tr.peer.CardHash, tr.peer.Instance = p.Port, p.CardHash, p.Instance
	tr.peer.IPs = sortedKeys(tr.expiry)
	if !changed {
		return Event{}, false, nil
	}
	return Event{Kind: Changed, Peer: clonePeer(tr.peer)}, true, nil
}

// expire drops addresses whose time is up and reports peers that lost
// their last address (Left) or some of them (Changed).
func (t *tracker) expire(now time.Time) []Event {
	var evs []Event
	for a, tr := range t.peers {
		dropped := false
		for ip, exp := range tr.expiry {
			if !now.Before(exp) {
				delete(tr.expiry, ip)
				dropped = true
			}
		}
		if !dropped {
			continue
		}
		tr.peer.IPs = sortedKeys(tr.expiry)
		if len(tr.expiry) == 0 {
			delete(t.peers, a)
			evs = append(evs, Event{Kind: Left, Peer: clonePeer(tr.peer)})
			continue
		}
		evs = append(evs, Event{Kind: Changed, Peer: clonePeer(tr.peer)})
	}
	slices.SortFunc(evs, func(x, y Event) int { return slices.Compare(x.Peer.Addr[:], y.Peer.Addr[:]) })
	return evs
}

// list returns the current peers sorted by address.
func (t *tracker) list() []Peer {
	out := make([]Peer, 0, len(t.peers))
	for _, tr := range t.peers {
		out = append(out, clonePeer(tr.peer))
	}
	slices.SortFunc(out, func(x, y Peer) int { return slices.Compare(x.Addr[:], y.Addr[:]) })
	return out
}

func sortedKeys(m map[netip.Addr]time.Time) []netip.Addr {
	out := make([]netip.Addr, 0, len(m))
	for ip := range m {
		out = append(out, ip)
	}
	slices.SortFunc(out, func(x, y netip.Addr) int { return x.Compare(y) })
	return out
}

func clonePeer(p Peer) Peer {
	p.IPs = slices.Clone(p.IPs)
	return p
}
