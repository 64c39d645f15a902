package router

import (
	"math"
	"time"

	"github.com/ternmesh/tern/bundle"
	"github.com/ternmesh/tern/router/policy"
	"github.com/ternmesh/tern/transports"
)

// Path costs come from router/policy: a link's metrics (rate, latency,
// loss, radio, airtime left, clear-only) decide which traffic class may use
// it and at what cost (policy.Cost, policy.Choose), and what it adds to a
// route metric (units; the table keeps the feasibility condition).

// linkMetrics describes l for the policy cost model from what the link
// reports: its bit rate (transports.RateLink), half its measured round trip
// (transports.StatsLink), whether it is a radio and how much of its airtime
// budget is left (transports.RadioLink, transports.AirtimeLink), and
// whether it forbids encryption. A radio's loss is estimated from its
// retransmissions.
func linkMetrics(l transports.Link) policy.LinkMetrics {
	var m policy.LinkMetrics
	if r, ok := l.(transports.RateLink); ok {
		m.BitsPerSecond = r.BitRate()
	}
	if s, ok := l.(transports.StatsLink); ok {
		if rtt := s.Stats().RTTMillis; rtt > 0 {
			m.Latency = time.Duration(rtt / 2 * float64(time.Millisecond))
		}
	}
	if r, ok := l.(transports.RadioLink); ok {
		m.Radio = true
		m.AirtimeLeft = 1
		if a, ok := l.(transports.AirtimeLink); ok {
			m.AirtimeLeft = a.AirtimeLeft()
		}
		if ri := r.RadioInfo(); ri.FramesOut > 0 {
			m.Loss = math.Min(float64(ri.Retransmissions)/float64(ri.FramesOut+ri.Retransmissions), 0.9)
		}
	}
	m.ClearOnly = transports.IsClearOnly(l)
	return m
}

// slowWiredStep is the expected time for a 1 KiB bundle over a wired link
// that costs one more unit: a wired hop that takes 250 ms or more (a
// satellite or congested uplink, a shaped line) counts 2, 500 ms or more 3,
// so a short fast path beats a far slow one, while every wired hop stays
// cheaper than a slow radio hop (4).
const slowWiredStep = 0.25

// linkUnits is what a hop over a link with metrics m adds to a route
// metric: policy.Units (1 wired, 2 fast radio, 4 slow radio), plus for a
// wired link one unit per slowWiredStep of expected time, at most 2 more.
func linkUnits(m policy.LinkMetrics) uint8 {
	u := policy.Units(m)
	if m.Radio {
		return u
	}
	if c, ok := policy.Cost(m, policy.Interactive, policy.BulkThreshold, false); ok {
		u += uint8(min(2, math.Floor(c/slowWiredStep)))
	}
	return u
}

// classOf is the policy class of a bundle of kind k and n encoded bytes,
// and whether it is end-to-end encrypted (so barred from clear-only links).
func classOf(k bundle.Kind, n int) (policy.Class, bool) {
	switch k {
	case bundle.KindData:
		return policy.ClassOf(n), true
	case bundle.KindClearSigned:
		return policy.ClassOf(n), false
	}
	return policy.Control, false
}

// cargo is what a path is chosen for: a bundle's kind, its encoded size,
// and whether it is bulk data (bundle.FlagBulk), which never goes on a
// radio link.
type cargo struct {
	kind bundle.Kind
	size int
	bulk bool
}

// cargoOf describes a stored bundle (its raw encoding).
func cargoOf(raw []byte) cargo {
	b, err := bundle.Unmarshal(raw)
	if err != nil {
		return cargo{kind: bundle.KindData, size: len(raw)}
	}
	return cargoOfBundle(b, len(raw))
}

func cargoOfBundle(b *bundle.Bundle, size int) cargo {
	return cargo{kind: b.Kind, size: size, bulk: b.Flags&bundle.FlagBulk != 0}
}

// isRadio reports whether l is a shared radio channel.
func isRadio(l transports.Link) bool {
	_, ok := l.(transports.RadioLink)
	return ok
}
