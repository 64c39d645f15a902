package router

import (
	"context"

	"github.com/ternmesh/tern/bundle"
	"github.com/ternmesh/tern/transports"
)

// LastHop is what the router knows of how a bundle handed to Deliver
// reached this node.
type LastHop struct {
	// Neighbour handed the bundle over; zero for a bundle that originated
	// here.
	Neighbour bundle.Addr
	// Medium is the kind of link (transports.Medium*) this node reaches that
	// neighbour over now, which is the link it came on unless the links
	// changed since; "" when unknown or the neighbour is gone.
	Medium string
}

type lastHopKey struct{}

// LastHopOf returns the last hop of the bundle being delivered, from the
// context the router passes to Config.Deliver.
func LastHopOf(ctx context.Context) (LastHop, bool) {
	h, ok := ctx.Value(lastHopKey{}).(LastHop)
	return h, ok
}

// withLastHop is the delivery context of a bundle from neighbour from.
func (r *Router) withLastHop(from bundle.Addr, k bundle.Kind) context.Context {
	h := LastHop{Neighbour: from}
	r.mu.Lock()
	n := r.nbrs[from]
	r.mu.Unlock()
	if n != nil {
		if l := n.linkFor(cargo{kind: k}); l != nil {
			h.Medium = transports.MediumOf(l)
		}
	}
	return context.WithValue(r.ctx, lastHopKey{}, h)
}
