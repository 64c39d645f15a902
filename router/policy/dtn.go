package policy

import "github.com/ternmesh/tern/bundle"

// DefaultCopies is the copy budget a new bundle starts with when no live
// route to its destination exists (binary spray-and-wait). It is the
// largest budget a node holds or grants (bundle.MaxCopies).
//
// Measured in the city simulator (router/meshsim, `go run ./cmd/tern sim
// --seeds 1-32 router/meshsim/testdata/city100.json`, delivered of 400 on
// average over the seeds), with copies crossing LoRa by air spray
// (AirShare, AirSprayMin 64): 4096 copies 370.8 against epidemic
// forwarding's 370.3; with each hearer's share capped at 255 (the aired
// frame's one byte until December 2026) 368.4. Seeds 1-16: 255 copies
// 357, 4096 copies 366 (capped), 16384 copies no better than 4096.
// Earlier (seeds 1-8): 128 copies 351 with 69 bundle transmissions per
// delivery, 255 copies 355 with 87.
const DefaultCopies = 4096

// Spray splits a copy budget on contact with a node that lacks the bundle
// (binary spray-and-wait, Spyropoulos et al.): the holder gives half and
// keeps the rest. With one copy left the holder waits and hands the bundle
// over only to its destination or to a neighbour with a live route to it.
func Spray(copies int) (give, keep int) {
	if copies <= 1 {
		return 0, copies
	}
	give = copies / 2
	return give, copies - give
}

// AirSprayMin is the least copy budget for which a radio node sprays an
// unrouted bundle on the air (AirShare). Below it the copies go only over
// point-to-point contacts, one neighbour at a time. It was 16 with 255
// copies; with DefaultCopies 4096, 16 spent too much airtime in the city
// simulator (hearers' shares stay large enough to air again for more
// generations), and the measurement above is with 64.
const AirSprayMin = 64

// AirShare splits a copy budget for one broadcast of an unrouted bundle on
// a shared radio channel heard by hearers neighbours: every hearer that
// lacks the bundle keeps share copies (its own budget), and the sender,
// which keeps custody, keeps the rest, at least half of what it had. No
// hearer acknowledges (custody does not move), so the sender counts every
// neighbour as served; one that missed the frame loses only its share.
// The aired frame carries the share in two bytes (transports/radiolink
// FORMAT.md, frame type 7), so it is never capped below the budget: with
// 4096 copies and 2 hearers each gets 1024 and the sender keeps 2048. A
// cap at 255 (the frame's one byte until December 2026) kept budgets on
// the sender that its hearers would have carried further; removing it
// raised the city simulator's delivery over seeds 1-32 (DefaultCopies).
//
// A radio broadcast reaches every hearer for one transmission, where the
// contacts spray reaches one neighbour per transmission: in the city
// simulator (router/meshsim) it is what lets copies reach the handhelds on
// the far side of a LoRa relay, as epidemic forwarding's unicast copies do.
// It returns share 0 when there are no hearers or fewer copies than
// AirSprayMin. With more hearers than half the copies every hearer still
// gets one and the sender keeps half: the budget then grows by at most
// the hearers beyond that, the price of one frame serving them all.
func AirShare(copies, hearers int) (share, keep int) {
	if hearers <= 0 || copies < AirSprayMin {
		return 0, copies
	}
	share = max(1, copies/(2*hearers))
	return share, max(copies-share*hearers, copies/2)
}

// Action is what to do with one held bundle on contact with a neighbour.
type Action uint8

const (
	// Hold keeps the bundle here.
	Hold Action = iota
	// Forward hands the bundle and all its copies over (custody moves).
	Forward
	// Copy gives the neighbour a share of the copies and keeps the rest.
	Copy
)

// Decide chooses what a holder with copies left does with a bundle for
// dest on contact with neighbour n, which lacks it. nbrIsDest: n is the
// destination; nbrLive: n has a live route to dest (per its announce or
// our table's choice of n as next hop); selfLive: this node has a live
// route to dest through someone other than n.
func Decide(copies int, nbrIsDest, nbrLive, selfLive bool) Action {
	switch {
	case nbrIsDest || nbrLive:
		return Forward
	case selfLive:
		return Hold
	case copies > 1:
		return Copy
	}
	return Hold
}

// Missing returns the IDs this node holds (mine) that the neighbour's
// summary (has) lacks, in mine's order. Summaries carry IDs first; bundles follow only for what is
// missing (push-pull).
func Missing(mine []bundle.ID, has func(bundle.ID) bool) []bundle.ID {
	var out []bundle.ID
	for _, id := range mine {
		if !has(id) {
			out = append(out, id)
		}
	}
	return out
}
