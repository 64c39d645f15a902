package chat

import (
	"context"
	"errors"
	"fmt"

	"github.com/ternmesh/tern/bundle"
	"github.com/ternmesh/tern/crypto"
	"github.com/ternmesh/tern/message"
	"github.com/ternmesh/tern/router"
)

// Deliver is the router's local delivery (router.Config.Deliver): it opens
// a sealed bundle, stores what it carries, and answers a text with a
// delivery receipt. It is idempotent: a message already in the history is
// acknowledged again but not stored twice.
func (a *App) Deliver(ctx context.Context, b *bundle.Bundle) error {
	var op crypto.Opened
	var err error
	clear := false
	switch b.Kind {
	case bundle.KindData:
		op, err = a.cfg.Box.Open(b.Payload)
	case bundle.KindClearSigned:
		clear = true
		op.From, op.Plaintext, err = crypto.OpenClear(crypto.Address(b.Dest), b.Payload)
	default:
		return router.Reject("unsupported-kind", fmt.Errorf("bundle kind %d is not for applications", b.Kind))
	}
	switch {
	case errors.Is(err, crypto.ErrReplay):
		return router.Reject("replayed", err)
	case errors.Is(err, crypto.ErrForged):
		return router.Reject("forged", err)
	case errors.Is(err, crypto.ErrMalformed):
		return router.Reject("malformed", err)
	case errors.Is(err, crypto.ErrNoSession):
		return router.Reject("unknown-session", err)
	case err != nil:
		return router.Reject("undecryptable", err)
	}
	m, err := message.Unmarshal(op.Plaintext)
	if err != nil {
		return router.Reject("malformed", fmt.Errorf("message from %s: %w", op.From.Short(), err))
	}
	// Compact messages carry neither ID nor send time: the bundle's (derived)
	// ID and creation time stand in.
	if m.ID == ([16]byte{}) {
		m.ID = b.ID
	}
	if m.Sent == 0 {
		m.Sent = b.Created
	}
	hop, _ := router.LastHopOf(ctx)
	switch m.Type {
	case message.Text:
		return a.receiveText(op.From, m, clear, hop.Medium)
	case message.Receipt:
		a.setState(m.Ref[:], StateDelivered, "", "")
		return nil
	case message.Read:
		a.setState(m.Ref[:], StateRead, "", "")
		return nil
	}
	if h := a.handler(m.Type); h != nil {
		return h.Receive(Incoming{From: op.From, Message: m, Bundle: b, Clear: clear, Path: hop.Medium})
	}
	return router.Reject("unsupported-message", fmt.Errorf("message type %s from %s: no application here handles it", m.Type, op.From.Short()))
}

func (a *App) receiveText(from crypto.Address, m *message.Message, clear bool, path string) error {
	if _, ok := a.load(m.ID[:]); !ok {
		r := Record{
			ID: fmt.Sprintf("%x", m.ID), Peer: from.String(), PeerName: a.nameOf(from), Incoming: true,
			Text: m.Text, Sent: m.Sent, Received: a.cfg.Now().UnixMilli(), State: StateReceived,
			Clear: clear, Path: path,
		}
		if err := a.save(r); err != nil {
			return fmt.Errorf("storing message from %s: %w", from.Short(), err)
		}
		a.publish(Event{Type: "message", Message: r})
	}
	// Receipt on every copy: the first receipt may have been lost.
	// A clear message may have come over amateur radio, where an encrypted
	// receipt could not go back: answer it in kind.
	a.sendReceipt(from, message.Receipt, m.ID, clear)
	return nil
}

// sendReceipt answers message id from peer with a receipt of type t
// (Receipt or Read), in kind: clear-signed for a clear message. A receipt
// that cannot be sent is logged; the message it answers is stored anyway.
func (a *App) sendReceipt(peer crypto.Address, t message.Type, id [16]byte, clear bool) {
	receipt := &message.Message{Type: t, Ref: id}
	var b *bundle.Bundle
	var err error
	if clear {
		b, err = a.signClear(peer, receipt)
	} else {
		b, err = a.seal(peer, nil, receipt)
	}
	if err != nil {
		a.cfg.Logger.Warn("cannot send receipt", "type", t.String(), "to", peer.Short(), "err", err)
		return
	}
	if err := a.cfg.Router.Submit(b); err != nil {
		a.cfg.Logger.Warn("cannot queue receipt", "type", t.String(), "to", peer.Short(), "err", err)
	}
}
