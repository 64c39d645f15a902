package policy

import "github.com/ternmesh/tern/bundle"

// DefaultCopies is the copy budget a new bundle starts with when no live
// route to its destination exists (binary spray-and-wait). It must fit a
// store record's one byte (1-255).
//
// Measured in the city simulator (router/meshsim, seed 7, delivered of
// 400 and bundle transmissions per delivery): 16 copies 325 / 36, 32
// 338 / 38, 64 345 / 50, 128 358 / 65, 256 352 / 78. Copies spread only
// over point-to-point links (summaries never go on a radio), and beyond
// about 128 every node those links reach already holds one; epidemic
// forwarding makes 324 transmissions per delivery there.
const DefaultCopies = 128

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
