// Package chat is the messaging application on top of the router: contacts,
// 1:1 text messages sealed end to end, delivery receipts, the local history
// and the stream of events that `tern chat` and the web UI show.
//
// A message goes through these states on the sender: queued (on disk here),
// forwarded (a neighbour took custody, over a link whose medium is recorded
// as the message's Path), delivered (the recipient's receipt came back),
// read (the recipient's UI displayed it and said so with a read receipt,
// see MarkRead). The recipient stores a message before it answers with a
// receipt, and recognises a message it already has by its ID.
package chat

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/ternmesh/tern/bundle"
	"github.com/ternmesh/tern/crypto"
	"github.com/ternmesh/tern/message"
	"github.com/ternmesh/tern/router"
	"github.com/ternmesh/tern/store"
)

// Defaults for bundles this application originates.
const (
	// DefaultLifetime is 5 days: 120 hours fits one byte in the compact
	// radio encoding (transports/radiolink/FORMAT.md).
	DefaultLifetime = 5 * 24 * time.Hour
	DefaultHopLimit = 32
)

// Message states as users see them.
const (
	StateQueued    = "queued"
	StateForwarded = "forwarded"
	StateDelivered = "delivered"
	StateRead      = "read"
	StateReceived  = "received" // incoming, not yet displayed
)

// Contact is a person whose card this node holds.
type Contact struct {
	Name    string `json:"name"`
	Address string `json:"address"`
	Card    []byte `json:"card"`
	Added   int64  `json:"added"`
}

// Record is one message in the history.
type Record struct {
	ID       string `json:"id"`
	Peer     string `json:"peer"`      // the other party's address
	PeerName string `json:"peer_name"` // its contact name, if known
	Incoming bool   `json:"incoming"`
	Text     string `json:"text"`
	Sent     int64  `json:"sent"`     // sender's clock, unix ms (0 unknown)
	Received int64  `json:"received"` // local clock, unix ms
	State    string `json:"state"`
	Bundle   string `json:"bundle,omitempty"`
	// Clear is true for a message that travelled signed but unencrypted
	// (allowed over amateur radio with --over-air-clear).
	Clear bool `json:"clear,omitempty"`
	// Note explains a delay the sender should know about (why a message
	// waits), empty when there is none.
	Note string `json:"note,omitempty"`
	Via  string `json:"via,omitempty"` // neighbour that took custody first
	// Path is the medium (transports.Medium*: internet, lan, lora,
	// packet-radio) of the first hop of an outgoing message, or of the
	// last hop of an incoming one; empty when unknown.
	Path string `json:"path,omitempty"`

	// Group channels (package group) keep their messages in records too:
	// Peer is then the group's ID, PeerName its name, and From the author.
	Group    bool   `json:"group,omitempty"`
	From     string `json:"from,omitempty"`      // author's address (incoming group messages)
	FromName string `json:"from_name,omitempty"` // author's name, if known
	// Kind is "" for a text and "notice" for a line about the group itself
	// (someone added or removed) that nobody typed.
	Kind string `json:"kind,omitempty"`
	// Members is the state of an outgoing group message at each recipient
	// (address -> queued, forwarded, delivered or read); State is the least
	// advanced of them.
	Members map[string]string `json:"members,omitempty"`
}

// Event is pushed to subscribers when something changes.
type Event struct {
	Type    string `json:"type"` // "message" (new incoming) or "status" (outgoing state changed)
	Message Record `json:"message"`
}

// Submitter takes a bundle into the node's custody; *router.Router is one.
type Submitter interface {
	Submit(b *bundle.Bundle) error
	// PathProblem explains why a bundle of this kind to dest cannot leave
	// now, or returns "".
	PathProblem(dest bundle.Addr, k bundle.Kind) string
}

// Config wires the chat application.
type Config struct {
	Identity *crypto.Identity
	Box      *crypto.Box
	Store    *store.Store
	Router   Submitter
	Now      func() time.Time
	Rand     io.Reader
	Logger   *slog.Logger
}

// App is the chat application of one node.
type App struct {
	cfg      Config
	contacts *store.KV
	records  *Records // message id = the ID of the bundle that carried it

	mu       sync.Mutex
	feed     *Feed[Event]
	handlers map[message.Type]Handler // see Handle
	retry    retryCache               // opened messages whose handler failed (deliver.go)
}

// New returns the chat application.
func New(cfg Config) *App {
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Rand == nil {
		cfg.Rand = rand.Reader
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	return &App{
		cfg:      cfg,
		contacts: cfg.Store.Bucket("contacts"),
		records:  NewRecords(cfg.Store, "messages", "message-index"),
		feed:     NewFeed[Event](256),
	}
}

// AddContact stores a verified card under a name (the card's own name when
// name is empty).
func (a *App) AddContact(card *crypto.Card, name string) (Contact, error) {
	if name == "" {
		name = card.Name
	}
	if card.Address() == a.cfg.Identity.Address() {
		return Contact{}, errors.New("that is this node's own card: add the card of someone else")
	}
	c := Contact{Name: name, Address: card.Address().String(), Card: card.Marshal(), Added: a.cfg.Now().UnixMilli()}
	v, _ := json.Marshal(c)
	addr := card.Address()
	if err := a.contacts.Put(addr[:], v); err != nil {
		return Contact{}, fmt.Errorf("saving contact: %w", err)
	}
	return c, nil
}

// Contacts lists contacts sorted by name.
func (a *App) Contacts() ([]Contact, error) {
	var out []Contact
	err := a.contacts.ForEach(func(_, v []byte) error {
		var c Contact
		if err := json.Unmarshal(v, &c); err != nil {
			return err
		}
		out = append(out, c)
		return nil
	})
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out, err
}

// Resolve finds a contact by name, full address or unique address prefix.
func (a *App) Resolve(who string) (Contact, *crypto.Card, error) {
	cs, err := a.Contacts()
	if err != nil {
		return Contact{}, nil, err
	}
	var hits []Contact
	for _, c := range cs {
		if strings.EqualFold(c.Name, who) || c.Address == strings.ToLower(who) {
			hits = []Contact{c}
			break
		}
		if len(who) >= 4 && strings.HasPrefix(c.Address, strings.ToLower(who)) {
			hits = append(hits, c)
		}
	}
	if len(hits) == 0 {
		// Not a contact, but someone who wrote to us: the session knows
		// their keys, so a reply needs no card.
		if addr, err := crypto.ParseAddress(who); err == nil && a.cfg.Box.HasSession(addr) {
			return Contact{Address: addr.String()}, nil, nil
		}
	}
	switch len(hits) {
	case 0:
		return Contact{}, nil, fmt.Errorf("no contact %q: add one with `tern contact add <tern:uri> --name %s`, list them with `tern contacts`", who, who)
	case 1:
	default:
		return Contact{}, nil, fmt.Errorf("%q matches %d contacts: use more of the address or the name", who, len(hits))
	}
	// The card was verified when added; parse it without the expiry check
	// so an expired card still names the contact (sessions outlive cards).
	card, err := crypto.ParseCard(hits[0].Card, time.Unix(hits[0].Added/1000, 0))
	if err != nil {
		return Contact{}, nil, fmt.Errorf("stored card of %s is unreadable: add it again: %w", hits[0].Name, err)
	}
	return hits[0], card, nil
}

func (a *App) nameOf(addr crypto.Address) string {
	v, err := a.contacts.Get(addr[:])
	if err != nil || v == nil {
		return ""
	}
	var c Contact
	if json.Unmarshal(v, &c) != nil {
		return ""
	}
	return c.Name
}

// Send seals text for the contact and hands it to the router. When Send
// returns, the message is on disk and will be delivered when a path exists.
func (a *App) Send(who, text string) (Record, error) { return a.SendWith(who, text, SendOptions{}) }

// SendOptions are the choices a user can make for one message.
type SendOptions struct {
	// OverAirClear sends the message signed but NOT encrypted, so that it
	// may cross amateur-radio links (where encryption is forbidden). Every
	// relay can read it. Never set without the user asking.
	OverAirClear bool
	// Card (SendMessage only) starts a session with a recipient who is not
	// a contact and has none yet (a fellow member of a group); it must be
	// the recipient's verified card.
	Card *crypto.Card
	// Bulk marks the bundle as bulk data (bundle.FlagBulk, for file
	// chunks): the router keeps it off radio links.
	Bulk bool
}

// SendWith is Send with options.
func (a *App) SendWith(who, text string, opt SendOptions) (Record, error) {
	c, card, err := a.Resolve(who)
	if err != nil {
		return Record{}, err
	}
	if text == "" {
		return Record{}, errors.New("empty message: write some text")
	}
	now := a.cfg.Now()
	// The compact text form (no message ID, no send time): the bundle's
	// derived ID names the message and its Created time says when.
	m := &message.Message{Type: message.Text, Text: text}
	to, err := crypto.ParseAddress(c.Address)
	if err != nil {
		return Record{}, err
	}
	var b *bundle.Bundle
	if opt.OverAirClear {
		b, err = a.signClear(to, m)
	} else {
		b, err = a.seal(to, card, m)
	}
	if err != nil {
		return Record{}, err
	}
	id := b.ID
	rec := Record{
		ID: id.String(), Peer: c.Address, PeerName: c.Name, Text: text,
		Sent: b.Created, Received: now.UnixMilli(), State: StateQueued, Bundle: b.ID.String(),
		Clear: opt.OverAirClear,
	}
	// History first: if the router then fails the user sees the message
	// as queued and can send it again; the reverse could lose it.
	if err := a.save(rec); err != nil {
		return Record{}, err
	}
	if err := a.cfg.Router.Submit(b); err != nil {
		return Record{}, fmt.Errorf("message not queued: %w", err)
	}
	rec.Note = a.cfg.Router.PathProblem(b.Dest, b.Kind)
	return rec, nil
}

// signClear wraps m as a signed, unencrypted bundle for to.
func (a *App) signClear(to crypto.Address, m *message.Message) (*bundle.Bundle, error) {
	pt, err := m.Marshal()
	if err != nil {
		return nil, err
	}
	payload, err := a.cfg.Identity.SignClear(to, pt)
	if err != nil {
		return nil, err
	}
	return a.wrap(to, bundle.KindClearSigned, payload), nil
}

// seal encrypts m for to and wraps it in a data bundle.
func (a *App) seal(to crypto.Address, card *crypto.Card, m *message.Message) (*bundle.Bundle, error) {
	pt, err := m.Marshal()
	if err != nil {
		return nil, err
	}
	sealed, err := a.cfg.Box.Seal(to, card, pt)
	if err != nil {
		return nil, fmt.Errorf("encrypting for %s: %w", to.Short(), err)
	}
	return a.wrap(to, bundle.KindData, sealed), nil
}

// wrap puts a payload in a bundle whose ID derives from its content.
func (a *App) wrap(to crypto.Address, k bundle.Kind, payload []byte) *bundle.Bundle {
	dest := bundle.Addr(to)
	return &bundle.Bundle{
		Version: bundle.Version, Kind: k, Flags: bundle.FlagDerivedID, Dest: dest,
		// Created in whole seconds: 2 bytes less on a radio hop.
		ID: bundle.DerivedID(dest, payload), Created: a.cfg.Now().Truncate(time.Second).UnixMilli(),
		Lifetime: uint64(DefaultLifetime / time.Millisecond), HopLimit: DefaultHopLimit, Payload: payload,
	}
}

func (a *App) save(r Record) error {
	peer, err := crypto.ParseAddress(r.Peer)
	if err != nil {
		return err
	}
	return a.records.Save(peer, r)
}

func (a *App) load(id []byte) (Record, bool) { return a.records.Load(id) }

// History lists messages, oldest first: with one peer when peer is not
// empty, else all. limit 0 means all.
func (a *App) History(peer string, limit int) ([]Record, error) {
	if peer == "" {
		return a.records.List(nil, limit)
	}
	c, _, err := a.Resolve(peer)
	if err != nil {
		return nil, err
	}
	p, _ := crypto.ParseAddress(c.Address)
	return a.records.List((*[16]byte)(&p), limit)
}

// Subscribe returns a channel of events until ctx ends. A subscriber that
// falls behind by more than 256 events misses the excess (the history stays
// authoritative).
func (a *App) Subscribe(ctx context.Context) <-chan Event { return a.feed.Subscribe(ctx) }

func (a *App) publish(e Event) { a.feed.Publish(e) }

// setState moves an outgoing message forward (never backward).
func (a *App) setState(msgID []byte, state, via, path string) {
	r, ok := a.load(msgID)
	if !ok || r.Incoming || rank(state) <= rank(r.State) {
		return
	}
	r.State = state
	if via != "" && r.Via == "" {
		r.Via, r.Path = via, path
	}
	if err := a.save(r); err != nil {
		a.cfg.Logger.Error("saving message state failed", "message", r.ID, "err", err)
		return
	}
	a.publish(Event{Type: "status", Message: r})
}

func rank(s string) int {
	switch s {
	case StateQueued:
		return 1
	case StateForwarded:
		return 2
	case StateDelivered:
		return 3
	case StateRead:
		return 4
	}
	return 0
}

// Rank orders message states: queued < forwarded < delivered < read; 0
// for anything else.
func Rank(state string) int { return rank(state) }

// OnRouterEvent follows custody of outgoing bundles (router.Config.Events).
func (a *App) OnRouterEvent(e router.Event) {
	if e.Kind != "forwarded" {
		return
	}
	// A message's ID is its bundle's ID: no lookup needed. Events for
	// bundles that are not messages (receipts) find no record and do nothing.
	go a.setState(e.ID[:], StateForwarded, crypto.Address(e.Neighbour).String(), e.Medium)
}
