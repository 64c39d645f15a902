package call

import (
	"fmt"
	"time"

	"github.com/ternmesh/tern/bundle"
	"github.com/ternmesh/tern/chat"
	"github.com/ternmesh/tern/crypto"
	"github.com/ternmesh/tern/router"
)

// Receive handles one call signal (chat.Handler for message.Call). It is
// idempotent: a signal for a call already recorded changes nothing twice.
// It returns once the history is on disk.
func (a *App) Receive(in chat.Incoming) error {
	s, err := UnmarshalSignal(in.Message.Data)
	if err != nil {
		return router.Reject("malformed", fmt.Errorf("call signal from %s: %w", in.From.Short(), err))
	}
	if in.Clear {
		// Signals are sealed by the pair's session; a clear one could be
		// read by every relay and would expose the media key.
		return router.Reject("unsupported-message", fmt.Errorf("call %s from %s came unencrypted: refused (call signals are always sealed)", s.Kind, in.From.Short()))
	}
	var age time.Duration
	if in.Bundle != nil {
		age = time.Duration(in.Bundle.Age) * time.Millisecond
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	switch s.Kind {
	case KindInvite:
		return a.invited(in.From, s, age)
	case KindHangup:
		return a.hungUp(in.From, s, age)
	}
	c := a.cur.Load()
	if c == nil || c.id != s.Call || c.peer != in.From || !c.caller || c.rec.State != StateRinging {
		if s.Kind == KindAccept {
			// An answer to a call this side gave up on: tell the callee, so
			// its call does not wait for audio that never comes.
			if r, ok, _ := a.load(s.Call); ok && !r.Incoming && r.Peer == in.From.String() && r.State != StateActive {
				return a.send(in.From, Signal{Kind: KindHangup, Call: s.Call, Reason: ReasonNoAnswer})
			}
		}
		return nil // late or stray: nothing rings or waits for it
	}
	switch s.Kind {
	case KindAccept:
		now := a.cfg.Now()
		c.peerKey = s.Key
		c.rec.State, c.rec.Answered, c.deadline = StateActive, now.UnixMilli(), time.Time{}
		a.activate(c, now)
		a.cfg.Logger.Info("call answered", "call", c.rec.ID, "by", c.peer.Short())
		return a.saveAndPublish(c.rec)
	case KindDecline:
		_, err := a.end(c, StateEnded, "declined")
		return err
	case KindBusy:
		_, err := a.end(c, StateEnded, a.nameOr(c.peer)+" is in another call")
		return err
	}
	return nil
}

// invited handles an invite; a.mu is held.
func (a *App) invited(from crypto.Address, s *Signal, age time.Duration) error {
	if _, seen, err := a.load(s.Call); err != nil || seen {
		return err // a copy of an invite already handled
	}
	now := a.cfg.Now()
	rec := Record{ID: s.Call.String(), Peer: from.String(), PeerName: a.peerName(from), Incoming: true,
		State: StateRinging, Started: now.Add(-age).UnixMilli(), Codec: s.Codec}
	missed := func(reason string) error {
		rec.State, rec.Ended, rec.Reason = StateMissed, now.UnixMilli(), reason
		return a.saveAndPublish(rec)
	}
	if s.Codec != Codec {
		if err := a.send(from, Signal{Kind: KindDecline, Call: s.Call}); err != nil {
			a.cfg.Logger.Warn("decline not queued", "call", rec.ID, "err", err)
		}
		return missed(fmt.Sprintf("the call offered codec %q; this node speaks only %s", s.Codec, Codec))
	}
	if age > MissedAfter {
		return missed(fmt.Sprintf("the call reached this node %s after it was placed", age.Round(time.Second)))
	}
	if c := a.cur.Load(); c != nil {
		if c.peer == from && c.caller && c.rec.State == StateRinging {
			// Both called each other at once: on both sides the call with
			// the lower ID goes on, the other ends without a word.
			if string(s.Call[:]) > string(c.id[:]) {
				rec.State, rec.Ended, rec.Reason = StateEnded, now.UnixMilli(), "crossed with your own call"
				return a.saveAndPublish(rec)
			}
			a.end(c, StateEnded, "crossed with "+a.nameOr(from)+"'s call")
		} else {
			if err := a.send(from, Signal{Kind: KindBusy, Call: s.Call}); err != nil {
				a.cfg.Logger.Warn("busy not queued", "call", rec.ID, "err", err)
			}
			return missed("you were in another call")
		}
	}
	key, err := a.newKey()
	if err != nil {
		return err
	}
	if err := a.saveAndPublish(rec); err != nil {
		return err
	}
	a.cur.Store(&live{id: s.Call, peer: from, rec: rec, deadline: now.Add(RingTimeout - age), myKey: key, peerKey: s.Key, base: now})
	a.cfg.Logger.Info("incoming call", "call", rec.ID, "from", from.Short())
	return nil
}

// hungUp handles a hang-up; a.mu is held.
func (a *App) hungUp(from crypto.Address, s *Signal, age time.Duration) error {
	if c := a.cur.Load(); c != nil && c.id == s.Call && c.peer == from {
		if c.rec.State == StateRinging && !c.caller {
			_, err := a.end(c, StateMissed, hangupNote(s.Reason, a.nameOr(from)))
			return err
		}
		reason := a.nameOr(from) + " hung up"
		if s.Reason == ReasonLost {
			reason = "connection lost (" + a.nameOr(from) + " stopped hearing you)"
		}
		_, err := a.end(c, StateEnded, reason)
		return err
	}
	if _, seen, err := a.load(s.Call); err != nil || seen {
		return err
	}
	// A hang-up for a call that never rang here: the caller gave up, or
	// could not reach this node by voice, before the invite arrived. It is
	// a missed call.
	now := a.cfg.Now()
	rec := Record{ID: s.Call.String(), Peer: from.String(), PeerName: a.peerName(from), Incoming: true,
		State: StateMissed, Started: now.Add(-age).UnixMilli(), Ended: now.UnixMilli(), Reason: hangupNote(s.Reason, a.nameOr(from))}
	return a.saveAndPublish(rec)
}

func hangupNote(r Reason, who string) string {
	switch r {
	case ReasonUnreachable:
		return who + " tried to call, but there was no internet or LAN path between you"
	case ReasonNoAnswer:
		return "no answer"
	}
	return who + " hung up before you answered"
}

// onVoice takes one voice datagram from the router (it must not block).
func (a *App) onVoice(_ bundle.Addr, p []byte) {
	tag, seq, err := parseFrameHead(p)
	c := a.cur.Load()
	if err != nil || c == nil || c.id.tag() != tag {
		a.unknownFrames.Add(1)
		return
	}
	now := a.cfg.Now()
	c.mu.Lock()
	if c.rx == nil || c.ended {
		c.mu.Unlock()
		return // audio that overtook the answer, or came after the end
	}
	t, opus, newest, err := c.rx.open(p, seq)
	if err != nil {
		c.rxs.refused++
		c.mu.Unlock()
		return
	}
	c.rxs.observe(t, newest, now, c.clock(now))
	if s := c.stream; s == nil || !s.offer(Frame{Seq: seq, Timestamp: t.media, Data: opus}) {
		c.rxs.droppedLocal++
	}
	c.mu.Unlock()
}
