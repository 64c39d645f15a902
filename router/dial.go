package router

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"sort"
	"time"

	"github.com/ternmesh/tern/bundle"
	"github.com/ternmesh/tern/transports"
)

// Reject wraps err as a permanent delivery failure, counted under reason
// (for example "forged" or "replayed").
func Reject(reason string, err error) error { return &rejectError{reason: reason, err: err} }

type rejectError struct {
	reason string
	err    error
}

func (e *rejectError) Error() string   { return e.reason + ": " + e.err.Error() }
func (e *rejectError) Unwrap() []error { return []error{ErrRejected, e.err} }
func (e *rejectError) Reason() string  { return e.reason }

// dialState is a configured outgoing link that the router keeps connected.
type dialState struct {
	url    string
	cancel context.CancelFunc
	state  string // "connecting", "up", "down"
	err    string
	peer   bundle.Addr
	since  time.Time
}

// PeerInfo describes a configured link or a connected neighbour for users.
type PeerInfo struct {
	URL       string    `json:"url,omitempty"`
	Neighbour string    `json:"neighbour,omitempty"`
	State     string    `json:"state"`
	Error     string    `json:"error,omitempty"`
	Since     time.Time `json:"since"`
	Remote    string    `json:"remote,omitempty"`
	RTTMillis float64   `json:"rtt_ms"`
	BytesIn   uint64    `json:"bytes_in"`
	BytesOut  uint64    `json:"bytes_out"`
	Queued    int       `json:"queued"`
	InFlight  int       `json:"in_flight"`
	Counters  Counters  `json:"counters"`
	// Silent lists links to the neighbour that stopped returning custody
	// acks while another carries the traffic (by their Peer().Remote).
	Silent []string `json:"silent,omitempty"`
	// Radio is set for a neighbour heard over a radio (LoRa, packet radio).
	Radio *transports.RadioInfo `json:"radio,omitempty"`
}

// Connect keeps a link to rawURL up: it dials, attaches the link, and dials
// again with backoff (1 s doubling to 1 min) whenever it drops, until
// Disconnect or Close. onPeer, if set, is called with each connected peer
// (the daemon uses it to remember a first-contact identity).
func (r *Router) Connect(rawURL string, onPeer func(transports.Peer)) error {
	u, err := url.Parse(rawURL)
	if err != nil {
		return fmt.Errorf("link URL %q: %w", rawURL, err)
	}
	d := r.cfg.Dialers[u.Scheme]
	if d == nil {
		return fmt.Errorf("link URL %q: unknown scheme %q (known: %v)", rawURL, u.Scheme, r.schemes())
	}
	ctx, cancel := context.WithCancel(r.ctx)
	ds := &dialState{url: rawURL, cancel: cancel, state: "connecting", since: r.cfg.Now()}
	r.mu.Lock()
	if old := r.dials[rawURL]; old != nil {
		r.mu.Unlock()
		cancel()
		return nil
	}
	r.dials[rawURL] = ds
	r.mu.Unlock()
	r.wg.Add(1)
	go func() {
		defer r.wg.Done()
		backoff := time.Second
		for ctx.Err() == nil {
			l, err := d.Dial(ctx, u)
			if err != nil {
				r.setDial(ds, "down", err.Error(), bundle.Addr{})
				r.log.Warn("cannot connect link; retrying", "url", rawURL, "in", backoff, "err", err)
				select {
				case <-ctx.Done():
				case <-time.After(backoff):
				}
				backoff = min(backoff*2, time.Minute)
				continue
			}
			backoff = time.Second
			p := l.Peer()
			r.setDial(ds, "up", "", p.Addr)
			if onPeer != nil {
				onPeer(p)
			}
			select {
			case <-r.AddLink(l):
			case <-ctx.Done():
				l.Close()
			}
			r.setDial(ds, "down", "link closed", p.Addr)
		}
	}()
	return nil
}

// Disconnect stops keeping rawURL connected and closes its link.
func (r *Router) Disconnect(rawURL string) bool {
	r.mu.Lock()
	ds := r.dials[rawURL]
	delete(r.dials, rawURL)
	r.mu.Unlock()
	if ds == nil {
		return false
	}
	ds.cancel()
	return true
}

func (r *Router) setDial(ds *dialState, state, errText string, peer bundle.Addr) {
	r.mu.Lock()
	defer r.mu.Unlock()
	ds.state, ds.err, ds.since = state, errText, r.cfg.Now()
	if peer != (bundle.Addr{}) {
		ds.peer = peer
	}
}

func (r *Router) schemes() []string {
	var s []string
	for k := range r.cfg.Dialers {
		s = append(s, k)
	}
	sort.Strings(s)
	return s
}

// Serve accepts links from l until it is closed or the router stops.
func (r *Router) Serve(l transports.Listener) {
	r.wg.Add(1)
	go func() {
		defer r.wg.Done()
		go func() { <-r.ctx.Done(); l.Close() }()
		for {
			link, err := l.Accept(r.ctx)
			if err != nil {
				if r.ctx.Err() == nil && !errors.Is(err, transports.ErrClosed) {
					r.log.Warn("accept failed", "listener", l.Addr(), "err", err)
					continue
				}
				return
			}
			r.AddLink(link)
		}
	}()
}

// Peers lists configured links and connected neighbours.
func (r *Router) Peers() []PeerInfo {
	r.mu.Lock()
	var out []PeerInfo
	covered := map[bundle.Addr]bool{}
	for _, ds := range r.dials {
		pi := PeerInfo{URL: ds.url, State: ds.state, Error: ds.err, Since: ds.since}
		if ds.peer != (bundle.Addr{}) {
			pi.Neighbour = addrString(ds.peer)
		}
		out = append(out, pi)
	}
	nbrs := make([]*neighbour, 0, len(r.nbrs))
	for _, n := range r.nbrs {
		nbrs = append(nbrs, n)
	}
	r.mu.Unlock()
	for _, n := range nbrs {
		covered[n.addr] = true
		n.mu.Lock()
		pi := PeerInfo{Neighbour: addrString(n.addr), State: "down", InFlight: len(n.inflight)}
		for _, ls := range n.links {
			pi.State, pi.Since, pi.Remote = "up", ls.since, ls.l.Peer().Remote
			if ls.silent {
				pi.Silent = append(pi.Silent, ls.l.Peer().Remote)
			}
			if rl, ok := ls.l.(transports.RadioLink); ok {
				ri := rl.RadioInfo()
				pi.Radio = &ri
			}
			if s, ok := ls.l.(transports.StatsLink); ok {
				st := s.Stats()
				pi.RTTMillis, pi.BytesIn, pi.BytesOut = st.RTTMillis, pi.BytesIn+st.BytesIn, pi.BytesOut+st.BytesOut
			}
		}
		n.mu.Unlock()
		pi.Counters = r.m.of(n.addr).snapshot()
		if recs, err := r.cfg.Store.ForNextHop(n.addr, 100000); err == nil {
			pi.Queued = len(recs)
		}
		// Merge with the configured link that leads to this neighbour.
		merged := false
		for i := range out {
			if out[i].Neighbour == pi.Neighbour && out[i].URL != "" {
				url, st, e := out[i].URL, out[i].State, out[i].Error
				out[i] = pi
				out[i].URL = url
				if pi.State != "up" {
					out[i].State, out[i].Error = st, e
				}
				merged = true
				break
			}
		}
		if !merged {
			out = append(out, pi)
		}
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].URL != out[j].URL {
			return out[i].URL < out[j].URL
		}
		return out[i].Neighbour < out[j].Neighbour
	})
	return out
}
