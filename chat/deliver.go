package chat

import (
	"context"
	"errors"
	"fmt"
	"sync"

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
		var ok bool
		if op, ok = a.retry.take(b.ID); !ok {
			op, err = a.cfg.Box.Open(b.Payload)
		}
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
	err = a.dispatch(op, m, b, clear, hop.Medium)
	if err != nil && b.Kind == bundle.KindData && !errors.Is(err, router.ErrRejected) {
		// The router will deliver it again, but the session has already
		// consumed its key (a second Open is a replay): keep the opened
		// plaintext for that retry.
		a.retry.keep(b.ID, op)
	}
	return err
}

// dispatch hands an opened message to whoever handles its type.
func (a *App) dispatch(op crypto.Opened, m *message.Message, b *bundle.Bundle, clear bool, medium string) error {
	switch m.Type {
	case message.Text:
		return a.receiveText(op.From, m, clear, medium)
	case message.Receipt:
		a.setState(m.Ref[:], StateDelivered, "", "")
		return nil
	case message.Read:
		a.setState(m.Ref[:], StateRead, "", "")
		return nil
	}
	if h := a.handler(m.Type); h != nil {
		return h.Receive(Incoming{From: op.From, Message: m, Bundle: b, Clear: clear, Path: medium})
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

// retryCache holds messages opened but not yet stored because their
// handler failed with a temporary error (a full disk, say), until the
// router's next delivery attempt takes them. Bounded: past maxRetryHeld the
// oldest is forgotten (its bundle is then refused as a replay). Held in
// memory only: after a crash the bundle is a replay too, so a handler that
// must not lose anything writes before it can fail.
type retryCache struct {
	mu    sync.Mutex
	held  map[bundle.ID]crypto.Opened
	order []bundle.ID
}

const maxRetryHeld = 1024

func (c *retryCache) keep(id bundle.ID, op crypto.Opened) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.held == nil {
		c.held = map[bundle.ID]crypto.Opened{}
	}
	if _, ok := c.held[id]; ok {
		return
	}
	if len(c.order) >= maxRetryHeld {
		delete(c.held, c.order[0])
		c.order = c.order[1:]
	}
	c.held[id] = op
	c.order = append(c.order, id)
}

func (c *retryCache) take(id bundle.ID) (crypto.Opened, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	op, ok := c.held[id]
	if ok {
		delete(c.held, id)
		for i, x := range c.order {
			if x == id {
				c.order = append(c.order[:i], c.order[i+1:]...)
				break
			}
		}
	}
	return op, ok
}
