package chat

import (
	"encoding/hex"
	"errors"
	"fmt"

	"github.com/ternmesh/tern/crypto"
	"github.com/ternmesh/tern/message"
	"github.com/ternmesh/tern/router"
)

// MaxReadIDs bounds the messages one MarkRead call may name.
const MaxReadIDs = 1000

// MarkRead records that the user has now seen the incoming messages ids of
// the conversation with peer (a contact name or address), and answers each
// one seen for the first time with a read receipt to its author, who then
// sees it as read. It returns how many messages were newly marked. IDs that
// name no incoming message of that conversation are an error; IDs already
// read are skipped, so calling it again is harmless.
func (a *App) MarkRead(peer string, ids []string) (int, error) {
	if len(ids) > MaxReadIDs {
		return 0, fmt.Errorf("%d message IDs in one call: mark at most %d at a time", len(ids), MaxReadIDs)
	}
	c, _, err := a.Resolve(peer)
	if err != nil {
		return 0, err
	}
	from, err := crypto.ParseAddress(c.Address)
	if err != nil {
		return 0, err
	}
	n := 0
	for _, id := range ids {
		raw, err := hex.DecodeString(id)
		if err != nil || len(raw) != 16 {
			return n, fmt.Errorf("message id %q is not 32 hex characters", id)
		}
		r, ok := a.load(raw)
		if !ok || !r.Incoming || r.Peer != c.Address {
			return n, fmt.Errorf("no message %s from %s: give the IDs of messages received in that conversation", id, peer)
		}
		if r.State != StateReceived {
			continue
		}
		r.State = StateRead
		if err := a.save(r); err != nil {
			return n, fmt.Errorf("saving message %s as read: %w", id, err)
		}
		n++
		a.publish(Event{Type: "status", Message: r})
		a.sendReceipt(from, message.Read, [16]byte(raw), r.Clear)
	}
	return n, nil
}

// Publish hands an event to every subscriber (see Subscribe); applications
// that keep records of their own (group channels) announce them with it.
func (a *App) Publish(e Event) { a.publish(e) }

// Reject is router.Reject for applications that do not import the router:
// the bundle is dropped for good and counted under reason.
func Reject(reason string, err error) error { return router.Reject(reason, err) }

// IsRejected reports whether err drops a bundle for good (made by Reject).
func IsRejected(err error) bool { return errors.Is(err, router.ErrRejected) }
