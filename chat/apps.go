package chat

import (
	"fmt"

	"github.com/ternmesh/tern/bundle"
	"github.com/ternmesh/tern/crypto"
	"github.com/ternmesh/tern/message"
)

// Applications other than 1:1 text (groups, files, call signalling) ride on
// the same sealed sessions: they send message.Message values of their own
// type with SendMessage and receive them through a Handler registered with
// Handle. The chat App stays the one place that seals, signs and opens.

// Incoming is an application message as it arrived.
type Incoming struct {
	From    crypto.Address // authenticated sender (from the session or the signature)
	Message *message.Message
	Bundle  *bundle.Bundle // the bundle that carried it (ID, Created, Age)
	Clear   bool           // travelled signed but unencrypted
	// Path is the medium of the link it arrived on (transports.Medium*),
	// "" when unknown.
	Path string
}

// Handler receives the application messages of one type.
//
// Receive is called by the router's delivery, once the bundle is opened. It
// must be idempotent (after a crash a bundle may be delivered again) and
// return only once what it keeps is durable: the bundle is then released.
// An error from router.Reject drops the bundle for good (and is counted by
// its reason); any other error leaves it stored and delivery is retried.
type Handler interface {
	Receive(in Incoming) error
}

// Handle routes incoming messages of type t to h. Call it while wiring the
// node, before links start delivering.
func (a *App) Handle(t message.Type, h Handler) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.handlers == nil {
		a.handlers = map[message.Type]Handler{}
	}
	a.handlers[t] = h
}

func (a *App) handler(t message.Type) Handler {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.handlers[t]
}

// SendMessage seals m for to (a contact, or someone with a session here) and
// hands it to the router. When it returns without error the bundle is on
// disk and will travel when a path exists; its ID is the bundle's.
func (a *App) SendMessage(to crypto.Address, m *message.Message, opt SendOptions) (*bundle.Bundle, error) {
	card := opt.Card
	if !opt.OverAirClear && card == nil {
		_, c, err := a.Resolve(to.String())
		if err != nil {
			return nil, err
		}
		card = c
	}
	var b *bundle.Bundle
	var err error
	if opt.OverAirClear {
		b, err = a.signClear(to, m)
	} else {
		b, err = a.seal(to, card, m)
	}
	if err != nil {
		return nil, err
	}
	if opt.Bulk {
		b.Flags |= bundle.FlagBulk
	}
	if err := a.cfg.Router.Submit(b); err != nil {
		return nil, fmt.Errorf("%s message to %s not queued: %w", m.Type, to.Short(), err)
	}
	return b, nil
}

// PathProblem explains why a message to dest cannot leave now ("" if it
// can), as the router sees it.
func (a *App) PathProblem(dest crypto.Address, clear bool) string {
	k := bundle.KindData
	if clear {
		k = bundle.KindClearSigned
	}
	return a.cfg.Router.PathProblem(bundle.Addr(dest), k)
}
