package router

import (
	"sync"
	"time"

	"github.com/ternmesh/tern/bundle"
	"github.com/ternmesh/tern/router/policy"
)

// ingress rate-limits the bundles each neighbour hands over, one token
// bucket per neighbour and link class (policy.Limiter): radios get a
// lower rate than internet and LAN links. Relays cannot see who originated
// a bundle, so the limit keys on the neighbour that handed it over: a node
// that floods is held back at its first hop and cannot crowd out the
// others. A neighbour refused again and again is judged flooding
// (policy.FloodWatch) and the route table routes round it (table). Safe
// for concurrent use.
//
// Lock order: table.mu before ingress.mu (the table's penalty asks
// flooding); ingress never calls into the table.
type ingress struct {
	mu           sync.Mutex
	wired, radio *policy.Limiter
	flood        *policy.FloodWatch
}

func newIngress(cfg Config) *ingress {
	return &ingress{
		wired: policy.NewLimiter(cfg.IngressRate, cfg.IngressBurst),
		radio: policy.NewLimiter(cfg.RadioIngressRate, cfg.RadioIngressBurst),
		flood: policy.NewFloodWatch(),
	}
}

// allow takes one token for a bundle from neighbour n over a radio link
// (radio) or another link, and reports whether there was one (ok). A
// refusal counts toward judging n flooding; flooding reports that this
// refusal has just got n judged flooding (it was not before), so the
// caller logs it and reroutes once, not on every refusal.
func (g *ingress) allow(n bundle.Addr, radio bool, now time.Time) (ok, flooding bool) {
	g.mu.Lock()
	defer g.mu.Unlock()
	l := g.wired
	if radio {
		l = g.radio
	}
	if l.Allow(n, now) {
		return true, false
	}
	return false, g.flood.Refused(n, now)
}

// flooding reports whether neighbour n is judged flooding at now: it was
// refused at its ingress limit often enough lately (policy.FloodWatch).
func (g *ingress) flooding(n bundle.Addr, now time.Time) bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.flood.Flooding(n, now)
}
