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
// others. A neighbour refused again and again is judged flooding by the
// route table (table.refused). Safe for concurrent use.
type ingress struct {
	mu           sync.Mutex
	wired, radio *policy.Limiter
}

func newIngress(cfg Config) *ingress {
	return &ingress{
		wired: policy.NewLimiter(cfg.IngressRate, cfg.IngressBurst),
		radio: policy.NewLimiter(cfg.RadioIngressRate, cfg.RadioIngressBurst),
	}
}

// allow takes one token for a bundle from neighbour n over a radio link
// (radio) or another link, and reports whether there was one.
func (g *ingress) allow(n bundle.Addr, radio bool, now time.Time) bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	if radio {
		return g.radio.Allow(n, now)
	}
	return g.wired.Allow(n, now)
}
