// Package policy holds the routing decisions of a Tern node as plain,
// deterministic, goroutine-free code: link costs by traffic class, the
// distance-vector route table with its loop-freedom rule, announce pacing
// and airtime budgets, per-neighbour rate limits, and the delay-tolerant
// copy budget (spray-and-wait) with summary exchange. The real router
// (package router) and the mesh simulator (package router/meshsim) both
// drive it, so what the simulator measures is what the daemon does.
//
// Nothing here reads a clock or a random source: callers pass the time.
// Types are not safe for concurrent use; the router guards them.
package policy

import (
	"math"
	"time"
)

// Class is what a bundle is for; it decides which links it may take.
type Class uint8

const (
	// Interactive is chat and receipts: small, wants the fastest path.
	Interactive Class = iota
	// Bulk is files and large bundles: may use a radio only while most of
	// its airtime budget is left, so it never starves the channel.
	Bulk
	// Voice is live audio: never on a radio link.
	Voice
	// Control is hop-by-hop traffic (announces, acks, summaries).
	Control
)

func (c Class) String() string {
	switch c {
	case Interactive:
		return "interactive"
	case Bulk:
		return "bulk"
	case Voice:
		return "voice"
	case Control:
		return "control"
	}
	return "unknown"
}

// BulkThreshold is the encoded size above which a data bundle is bulk.
const BulkThreshold = 1024

// ClassOf classifies a data bundle of n encoded bytes.
func ClassOf(n int) Class {
	if n > BulkThreshold {
		return Bulk
	}
	return Interactive
}

// LinkMetrics is what a link tells the router about itself. The zero value
// is a fast, lossless, unlimited wired link.
type LinkMetrics struct {
	// BitsPerSecond is the usable rate; 0 means unknown (treated as fast).
	BitsPerSecond float64
	// Latency is the one-way delay.
	Latency time.Duration
	// Loss is the frame loss probability in [0,1).
	Loss float64
	// Radio marks a shared, airtime-limited medium (LoRa, packet radio).
	Radio bool
	// AirtimeLeft is the share of the regional airtime budget still
	// available, in [0,1]; meaningful only for radio links.
	AirtimeLeft float64
	// ClearOnly marks an amateur link: no encrypted bundle may cross it.
	ClearOnly bool
}

// fastBitrate stands in for an unknown rate.
const fastBitrate = 100e6

// BulkAirtimeFloor is the share of airtime budget that must remain for a
// radio link to carry bulk: below it only interactive and control traffic
// go on air.
const BulkAirtimeFloor = 0.5

// Cost is the expected time, in seconds, for one bundle of size bytes of
// class c to cross a link: latency plus serialisation, inflated by the
// expected retransmissions. ok is false when the class may not use the
// link at all: voice on a radio, bulk on a radio whose budget is low,
// anything on a radio whose budget is spent, encrypted data on a
// clear-only link (encrypted says whether the bundle is encrypted).
func Cost(m LinkMetrics, c Class, size int, encrypted bool) (cost float64, ok bool) {
	if encrypted && m.ClearOnly {
		return 0, false
	}
	if m.Radio {
		switch {
		case c == Voice:
			return 0, false
		case c == Bulk && m.AirtimeLeft < BulkAirtimeFloor:
			return 0, false
		case m.AirtimeLeft <= 0:
			return 0, false
		}
	}
	bps := m.BitsPerSecond
	if bps <= 0 {
		bps = fastBitrate
	}
	loss := math.Min(math.Max(m.Loss, 0), 0.95)
	t := m.Latency.Seconds() + float64(size)*8/bps
	return t / (1 - loss), true
}

// Choose returns the index of the cheapest usable link in links for a
// bundle of class c and size bytes, skipping any whose index down[i] is
// true unless no other is usable; -1 when none may carry it.
func Choose(links []LinkMetrics, down []bool, c Class, size int, encrypted bool) int {
	best, bestCost, bestDown := -1, math.Inf(1), true
	for i, m := range links {
		cost, ok := Cost(m, c, size, encrypted)
		if !ok {
			continue
		}
		d := i < len(down) && down[i]
		if best == -1 || (bestDown && !d) || (d == bestDown && cost < bestCost) {
			best, bestCost, bestDown = i, cost, d
		}
	}
	return best
}

// Units is a link's contribution to a route metric, in the small integer
// units announces carry (bundle.Route.Hops): 1 for a wired or internet
// hop, 2 for a fast radio, 4 for a slow one (under 5 kbit/s). A path over
// two LAN hops thus beats one over a LoRa hop.
func Units(m LinkMetrics) uint8 {
	switch {
	case !m.Radio:
		return 1
	case m.BitsPerSecond >= 5000:
		return 2
	default:
		return 4
	}
}
