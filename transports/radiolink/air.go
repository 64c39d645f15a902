package radiolink

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/ternmesh/tern/bundle"
	"github.com/ternmesh/tern/transports"
)

// Air spray: the router broadcasts an unrouted bundle once on the channel
// with a copy grant for every hearer (router/air.go). On air it is one
// frame of type 7 (FORMAT.md): the sender's link address, the copies
// (two bytes), and the bundle (compact when it can be); the grant note itself
// (bundle.AiredNote) follows from the bundle's ID and the copies, so the
// receiver rebuilds it and hands the router the note and then the bundle
// on its link to the sender, as if both had come by unicast. A broadcast
// is never fragmented (nobody could ask for a repair): a bundle that does
// not fit one frame is refused.

// errAirForm is wrapped (with transports.ErrTooBig) by Broadcast for
// frames this radio cannot put on the air as one aired-bundle frame.
var errAirForm = errors.New("radio broadcasts only an aired grant note and its bundle, in one frame")

// Broadcast queues an aired bundle for every neighbour: note must be
// bundle.AiredNote(id, copies) of raw's ID. It fails (wrapping
// transports.ErrTooBig) for any other pair or a bundle that does not fit
// one frame, and with ErrQueueFull when QueueLimit broadcasts already wait.
func (e *Engine) Broadcast(now time.Time, note, raw []byte) error {
	copies, err := airedCopies(note, raw)
	if err != nil {
		return fmt.Errorf("%w: %w (%w)", transports.ErrTooBig, errAirForm, err)
	}
	if e.airQueued >= e.cfg.QueueLimit {
		return fmt.Errorf("%d broadcasts already wait for airtime: %w", e.airQueued, ErrQueueFull)
	}
	// No next hop to elide the destination against, and hearers know
	// different addresses: the destination always goes in full (and no
	// hearer can NAK it).
	body, _, compact := compactBundle(raw, bundle.Addr{}, nil, true)
	if !compact {
		body = raw
	}
	f := encodeAir(e.book.linkCode(e.cfg.Self), e.cfg.Self, copies, compact, body)
	if len(f) > e.cfg.MaxFrame {
		return fmt.Errorf("aired bundle of %d bytes on air, over the %d-byte frame: %w", len(f), e.cfg.MaxFrame, transports.ErrTooBig)
	}
	e.airQueued++
	e.q[classInteractive] = append(e.q[classInteractive], txItem{frame: f})
	return nil
}

// airedCopies checks that note is exactly bundle.AiredNote of raw's ID and
// returns its copies.
func airedCopies(note, raw []byte) (uint16, error) {
	nb, err := bundle.Unmarshal(note)
	if err != nil || nb.Kind != bundle.KindSummary {
		return 0, errors.New("the first frame is not a summary")
	}
	s, err := bundle.UnmarshalSummary(nb.Payload)
	if err != nil || s.Flags != bundle.SummaryAired || len(s.Grants) != 1 {
		return 0, errors.New("the first frame is not an aired grant note of one grant")
	}
	b, err := bundle.Unmarshal(raw)
	if err != nil {
		return 0, fmt.Errorf("the second frame is not a bundle: %w", err)
	}
	g := s.Grants[0]
	want, err := bundle.AiredNote(b.ID, g.Copies)
	if err != nil || g.ID != b.ID || !bytes.Equal(want, note) {
		return 0, errors.New("the grant note is not bundle.AiredNote of the bundle's ID")
	}
	return g.Copies, nil
}

// deliverAired hands the router the grant note and the bundle of an aired
// frame from nb.
func (e *Engine) deliverAired(nb *neighbour, f frame) {
	raw := append([]byte(nil), f.body...)
	if f.flags&flAirCompact != 0 {
		var err error
		if raw, err = expandBundle(f.body, bundle.Addr{}, e.book); err != nil {
			e.stats.Malformed++ // full destinations only: nothing to NAK
			return
		}
	}
	b, err := bundle.Unmarshal(raw)
	if err != nil {
		e.stats.Malformed++
		return
	}
	note, err := bundle.AiredNote(b.ID, f.copies)
	if err != nil {
		e.stats.Malformed++
		return
	}
	e.stats.AiredIn++
	e.events = append(e.events, event{kind: evDeliver, addr: nb.addr, data: note})
	e.deliver(nb, raw)
}

// Broadcast implements transports.BroadcastLink: note (bundle.AiredNote)
// and its bundle go once, in one frame, to every neighbour on this radio.
// Like Send it waits for queue room until ctx ends, never for airtime.
func (l *Link) Broadcast(ctx context.Context, frames ...[]byte) error {
	if len(frames) != 2 {
		return fmt.Errorf("radio %s: %d frames: %w (%w)", l.r.name, len(frames), transports.ErrTooBig, errAirForm)
	}
	err := l.untilRoom(ctx, func(now time.Time) error { return l.r.eng.Broadcast(now, frames[0], frames[1]) })
	if err != nil {
		return fmt.Errorf("radio %s: %w", l.r.name, err)
	}
	return nil
}

// Channel implements transports.BroadcastLink: the radio, shared by the
// links to all its neighbours.
func (l *Link) Channel() any { return l.r }

var _ transports.BroadcastLink = (*Link)(nil)
