package router

import (
	"time"

	"github.com/ternmesh/tern/bundle"
	"github.com/ternmesh/tern/transports"
)

// Summaries (bundle.Summary, FORMAT.md) go between neighbours over links
// that are not radios: a full one when a link comes up, every
// AnnounceInterval and on every route change (the announce loop's round,
// whether or not the paced announce goes; what this node holds, and the
// receipts it knows), and
// notes in between (new receipts only, after SummaryDelay so that several
// ride together; grants ahead of the bundles they belong to). Nodes that
// predate summaries reject them, so only the full summary when a link
// comes up goes to a neighbour that has not sent one. The one summary that
// crosses a radio is the aired grant note (bundle.AiredNote) of an air
// spray (air.go), which the radio carries as its two copies bytes inside
// the broadcast frame of its bundle.

// summaryOverhead bounds the bundle header and the summary's own heads.
const summaryOverhead = 128

// sendSummary sends n a full summary (full) or a note of new receipts.
func (r *Router) sendSummary(n *neighbour, full bool) {
	l := n.summaryLink()
	if l == nil {
		return
	}
	n.mu.Lock()
	speaks, sent := n.speaks, n.rcptSent
	n.mu.Unlock()
	if !full && !speaks {
		return
	}
	room := min(l.MTU()-summaryOverhead, 2*bundle.MaxSummaryIDs*17) / 17
	if room <= 0 {
		return
	}
	s := bundle.Summary{}
	r.dtn.mu.Lock()
	if full {
		// Every receipt known (the newest if they do not all fit), not
		// only the new ones.
		s.Flags = bundle.SummaryHeld
		s.Delivered, sent = r.dtn.rcpt.newest(n.addr, min(room/2, bundle.MaxSummaryIDs))
	} else {
		s.Delivered, sent = r.dtn.rcpt.since(sent, n.addr, min(room, bundle.MaxSummaryIDs))
	}
	r.dtn.mu.Unlock()
	if full {
		s.Held = r.heldIDs(min(room-len(s.Delivered), bundle.MaxSummaryIDs))
	}
	if !full && len(s.Delivered) == 0 {
		return
	}
	payload, err := s.Marshal()
	if err == nil {
		err = r.sendControl(l, n.addr, bundle.KindSummary, payload)
	}
	if err != nil {
		if r.ctx.Err() == nil {
			r.log.Debug("summary not sent", "neighbour", addrString(n.addr), "err", err)
		}
		return
	}
	n.mu.Lock()
	if sent > n.rcptSent {
		n.rcptSent = sent
	}
	n.mu.Unlock()
}

// passedOnListed bounds how many bundles a summary lists that this node
// no longer holds (passedOn).
const passedOnListed = 512

// heldIDs lists up to max IDs held here, delay-tolerant ones (unrouted,
// parked) first, then up to passedOnListed bundles received lately that
// are no longer held (custody passed on, delivered, cleared by a
// receipt). A neighbour offers only what a summary does not list, so a
// node that handed a bundle on is not pushed it back by every other
// holder it meets: in the city simulator (router/meshsim) those pushes
// were about a sixth of all bundle transmissions.
func (r *Router) heldIDs(max int) []bundle.ID {
	seen := map[bundle.ID]bool{}
	var out []bundle.ID
	add := func(ids []bundle.ID, err error) {
		for _, id := range ids {
			if len(out) >= max {
				return
			}
			if !seen[id] {
				seen[id] = true
				out = append(out, id)
			}
		}
	}
	add(r.cfg.Store.HopIDs(bundle.Addr{}, max))
	add(r.cfg.Store.HopIDs(parked(), max))
	if len(out) < max {
		add(r.cfg.Store.IDs(max))
	}
	var gone []bundle.ID
	for _, id := range r.origins.recent(passedOnListed + len(out)) {
		if !seen[id] {
			gone = append(gone, id)
		}
	}
	held, room := r.cfg.Store.Stored(gone), min(max-len(out), passedOnListed)
	for i, id := range gone {
		if room <= 0 {
			break
		}
		if !held[i] {
			out = append(out, id)
			room--
		}
	}
	return out
}

// onSummary handles a summary from neighbour n.
func (r *Router) onSummary(n *neighbour, l transports.Link, s *bundle.Summary, now time.Time) {
	if s.Flags&bundle.SummaryEcho != 0 {
		r.sendEcho(n, l, 0)
	}
	n.mu.Lock()
	first := !n.speaks
	n.speaks = true
	n.mu.Unlock()
	if first {
		r.log.Debug("neighbour speaks summaries", "neighbour", addrString(n.addr))
	}
	if len(s.Grants) > 0 {
		r.dtn.addGrants(n.addr, s.Grants, now, s.Flags&bundle.SummaryAired != 0)
	}
	if len(s.Delivered) > 0 {
		r.learnReceipts(n.addr, s.Delivered)
	}
	if s.Flags&bundle.SummaryHeld != 0 {
		has := make(map[bundle.ID]bool, len(s.Held))
		for _, id := range s.Held {
			has[id] = true
		}
		r.contact(n, has)
	}
}

// notesLoop sends new receipts to every neighbour that speaks summaries,
// at most once per SummaryDelay.
func (r *Router) notesLoop() {
	defer r.wg.Done()
	for {
		select {
		case <-r.ctx.Done():
			return
		case <-r.notes:
		}
		t := time.NewTimer(r.cfg.SummaryDelay)
		select {
		case <-r.ctx.Done():
			t.Stop()
			return
		case <-t.C:
		}
		for _, n := range r.neighbours() {
			r.sendSummary(n, false)
		}
		r.saveReceipts()
	}
}

// neighbours lists the neighbours known now.
func (r *Router) neighbours() []*neighbour {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make([]*neighbour, 0, len(r.nbrs))
	for _, n := range r.nbrs {
		out = append(out, n)
	}
	return out
}

// sendEcho sends an empty summary over l, with flags (0 to answer a probe,
// bundle.SummaryEcho to probe a silent link).
func (r *Router) sendEcho(n *neighbour, l transports.Link, flags uint8) {
	p, err := (&bundle.Summary{Flags: flags}).Marshal()
	if err == nil {
		err = r.sendControl(l, n.addr, bundle.KindSummary, p)
	}
	if err != nil && r.ctx.Err() == nil {
		r.log.Debug("echo summary not sent", "neighbour", addrString(n.addr), "err", err)
	}
}
