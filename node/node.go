// Package node assembles one Tern node: identity, durable store, end-to-end
// sessions, router, links and the chat application. The daemon (`tern run`)
// is a Node plus the local API; tests build Nodes directly.
package node

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/ternmesh/tern/bundle"
	"github.com/ternmesh/tern/call"
	"github.com/ternmesh/tern/chat"
	"github.com/ternmesh/tern/crypto"
	"github.com/ternmesh/tern/files"
	"github.com/ternmesh/tern/group"
	"github.com/ternmesh/tern/message"
	"github.com/ternmesh/tern/router"
	"github.com/ternmesh/tern/store"
	"github.com/ternmesh/tern/transports"
)

// CardValidity is how long a freshly issued contact card stays valid.
const CardValidity = 90 * 24 * time.Hour

// Config says where a node keeps its state and what it is called.
type Config struct {
	DataDir string
	Name    string // shown on the contact card; default "tern"
	Logger  *slog.Logger
	Now     func() time.Time
	Store   store.Options
	Router  router.Config // tuning only; the node fills in the wiring
	Files   files.Config  // tuning only (chunk size, window, retry)
}

// Node is one running Tern node.
type Node struct {
	cfg    Config
	log    *slog.Logger
	id     *crypto.Identity
	card   *crypto.Card
	store  *store.Store
	box    *crypto.Box
	router *router.Router
	chat   *chat.App
	groups *group.Manager
	calls  *call.App
	files  *files.Service
	links  *store.KV

	radios      map[string]RadioOpener
	radioChecks map[string]func(*url.URL) error
	ctx         context.Context
	cancel      context.CancelFunc
	wg          sync.WaitGroup

	mu        sync.Mutex
	listeners []transports.Listener
	radioStop map[string]context.CancelFunc // running radio links by URL

	radioStats radioStats // recent readings of radio neighbours (radiostats.go)
}

// Open loads (or on first run creates) the identity and the store in
// cfg.DataDir. Start attaches links.
func Open(cfg Config) (*Node, error) {
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Name == "" {
		cfg.Name = "tern"
	}
	if err := os.MkdirAll(cfg.DataDir, 0o700); err != nil {
		return nil, fmt.Errorf("creating data directory %s: %w (choose another with --data DIR)", cfg.DataDir, err)
	}
	id, created, err := loadIdentity(filepath.Join(cfg.DataDir, "identity.seed"))
	if err != nil {
		return nil, err
	}
	log := cfg.Logger.With("node", id.Address().Short())
	if created {
		log.Info("created a new identity", "address", id.Address().String(), "file", filepath.Join(cfg.DataDir, "identity.seed"))
	}
	cfg.Store.Now = cfg.Now
	cfg.Store.Logger = log
	st, err := store.Open(filepath.Join(cfg.DataDir, "tern.db"), cfg.Store)
	if err != nil {
		return nil, err
	}
	n := &Node{cfg: cfg, log: log, id: id, store: st, links: st.Bucket("links")}
	if err := n.init(); err != nil {
		st.Close()
		return nil, err
	}
	return n, nil
}

func (n *Node) init() error {
	card, err := n.id.NewCard(n.cfg.Name, nil, n.cfg.Now(), CardValidity)
	if err != nil {
		return fmt.Errorf("issuing contact card: %w", err)
	}
	n.card = card
	n.box, err = crypto.NewBox(n.id, n.store.Bucket("sessions"), rand.Reader, n.cfg.Now)
	if err != nil {
		return fmt.Errorf("loading sessions: %w", err)
	}
	return nil
}

// loadIdentity reads the 32-byte master seed (hex) or creates it.
func loadIdentity(path string) (*crypto.Identity, bool, error) {
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		id, err := crypto.GenerateIdentity(rand.Reader)
		if err != nil {
			return nil, false, err
		}
		tmp := path + ".tmp"
		if err := os.WriteFile(tmp, []byte(hex.EncodeToString(id.Seed())+"\n"), 0o600); err != nil {
			return nil, false, fmt.Errorf("saving identity: %w", err)
		}
		if f, err := os.Open(tmp); err == nil {
			f.Sync()
			f.Close()
		}
		if err := os.Rename(tmp, path); err != nil {
			return nil, false, fmt.Errorf("saving identity: %w", err)
		}
		return id, true, nil
	}
	if err != nil {
		return nil, false, fmt.Errorf("reading identity %s: %w", path, err)
	}
	seed, err := hex.DecodeString(strings.TrimSpace(string(b)))
	if err != nil || len(seed) != 32 {
		return nil, false, fmt.Errorf("identity file %s is damaged (want 64 hex characters): restore it from a backup, or move it away to start as a new node", path)
	}
	id, err := crypto.IdentityFromSeed(seed)
	return id, false, err
}

// Links are the transports a node can use, built by the caller (cmd/tern
// builds the registry; tests build in-memory ones).
type Links struct {
	Dialers   map[string]transports.Dialer
	Listeners []transports.Listener
	// Radios open shared-channel radios (LoRa, KISS) by URL scheme; each
	// becomes a listener yielding one link per neighbour heard.
	Radios map[string]RadioOpener
	// RadioChecks validate a radio URL without touching hardware, so a
	// mistyped link is refused when it is given (tern run, tern peer add)
	// instead of being retried for ever.
	RadioChecks map[string]func(*url.URL) error
}

// Start runs the router and the chat application, serves the listeners and
// connects every link in urls and every link saved earlier with AddPeer.
func (n *Node) Start(l Links, urls []string) error {
	n.ctx, n.cancel = context.WithCancel(context.Background())
	n.radios, n.radioChecks = l.Radios, l.RadioChecks
	rc := n.cfg.Router
	rc.Self = bundle.Addr(n.id.Address())
	rc.Store = n.store
	rc.Dialers = l.Dialers
	rc.Now = n.cfg.Now
	rc.Logger = n.log
	var app *chat.App
	var groups *group.Manager
	// The router starts delivering what it holds as soon as it exists;
	// nothing reaches the applications before every one of them is
	// registered (a file chunk delivered to a node without its file
	// handler yet would be refused for good).
	ready := make(chan struct{})
	wait := func() bool {
		select {
		case <-ready:
			return true
		case <-n.ctx.Done():
			return false
		}
	}
	rc.Deliver = func(ctx context.Context, b *bundle.Bundle) error {
		if !wait() {
			return errors.New("node is stopping")
		}
		return app.Deliver(ctx, b)
	}
	rc.Events = func(e router.Event) {
		if wait() {
			app.OnRouterEvent(e)
			groups.OnRouterEvent(e.ID, e.Neighbour, e.Medium)
		}
	}
	r, err := router.New(rc)
	if err != nil {
		return err
	}
	n.router = r
	app = chat.New(chat.Config{Identity: n.id, Box: n.box, Store: n.store, Router: r, Now: n.cfg.Now, Logger: n.log})
	n.chat = app
	groups = group.New(group.Config{Identity: n.id, Card: n.Card, Chat: app, Store: n.store, Now: n.cfg.Now, Logger: n.log,
		OnChange: func(group.ID) { n.groupsChanged() }})
	app.Handle(message.Group, groups)
	n.groups = groups
	if n.calls, err = call.New(call.Config{Chat: app, Voice: r, History: n.store.Bucket("calls"), Now: n.cfg.Now, Logger: n.log}); err != nil {
		r.Close()
		return err
	}
	app.Handle(message.Call, n.calls)
	if err := n.startFiles(app, r, groups); err != nil {
		r.Close()
		return err
	}
	close(ready)
	n.wg.Add(1)
	go n.sampleRadios()
	for _, ln := range l.Listeners {
		n.log.Info("listening", "addr", ln.Addr())
		r.Serve(ln)
	}
	n.mu.Lock()
	n.listeners = l.Listeners
	n.mu.Unlock()
	for _, u := range urls {
		if err := n.connect(u, false); err != nil {
			return err
		}
	}
	return n.links.ForEach(func(k, v []byte) error {
		var s savedLink
		if json.Unmarshal(v, &s) != nil {
			return nil
		}
		u := string(k)
		if s.Pinned != "" {
			u = s.Pinned
		}
		if err := n.connect(u, false); err != nil {
			n.log.Warn("saved link is unusable", "url", u, "err", err)
		}
		return nil
	})
}

type savedLink struct {
	Added  int64  `json:"added"`
	Pinned string `json:"pinned,omitempty"` // the URL with the identity learned on first contact
}

// AddPeer connects a link now and on every later start.
func (n *Node) AddPeer(rawURL string) error { return n.connect(rawURL, true) }

func (n *Node) connect(rawURL string, save bool) error {
	u, err := url.Parse(rawURL)
	if err != nil || u.Scheme == "" || u.Host == "" && u.Opaque == "" && u.Path == "" {
		return fmt.Errorf("link URL %q is not a URL like quic://host:port", rawURL)
	}
	if check := n.radioChecks[u.Scheme]; check != nil {
		if err := check(u); err != nil {
			return fmt.Errorf("link %s: %w", rawURL, err)
		}
	}
	if save {
		v, _ := json.Marshal(savedLink{Added: n.cfg.Now().UnixMilli()})
		if err := n.links.Put([]byte(rawURL), v); err != nil {
			return err
		}
	}
	if open := n.radios[u.Scheme]; open != nil {
		n.runRadio(rawURL, u, open)
		return nil
	}
	pinless := u.Query().Get("id") == ""
	return n.router.Connect(rawURL, func(p transports.Peer) {
		if !pinless || !p.Authenticated {
			return
		}
		// Trust on first use: remember who answered, so a later impostor
		// at the same address is refused.
		q := u.Query()
		q.Set("id", crypto.Address(p.Addr).String())
		pu := *u
		pu.RawQuery = q.Encode()
		if old, _ := n.links.Get([]byte(rawURL)); old != nil {
			var s savedLink
			json.Unmarshal(old, &s)
			if s.Pinned == "" {
				s.Pinned = pu.String()
				v, _ := json.Marshal(s)
				n.links.Put([]byte(rawURL), v)
				n.log.Info("pinned link identity on first contact", "url", rawURL, "peer", crypto.Address(p.Addr).String())
			}
		}
	})
}

// RemovePeer forgets a saved link and disconnects it.
func (n *Node) RemovePeer(rawURL string) error {
	n.stopRadio(rawURL)
	n.router.Disconnect(rawURL)
	if v, _ := n.links.Get([]byte(rawURL)); v != nil {
		var s savedLink
		if json.Unmarshal(v, &s) == nil && s.Pinned != "" {
			n.router.Disconnect(s.Pinned)
		}
	}
	return n.links.Delete([]byte(rawURL))
}

// Close stops the router and closes the store.
func (n *Node) Close() error {
	if n.cancel != nil {
		n.cancel()
	}
	if n.calls != nil {
		n.calls.Close() // hangs up a call in progress
	}
	if n.router != nil {
		n.router.Close()
	}
	if n.files != nil {
		n.files.Close()
	}
	n.wg.Wait()
	return n.store.Close()
}

// Identity, Card, Router, Chat, Groups and Store expose the parts to the
// local API.
func (n *Node) Identity() *crypto.Identity { return n.id }
func (n *Node) Card() *crypto.Card {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.card
}

// SetName issues a fresh card carrying name; the new card is what the API
// shares from now on. (Links already up keep the card they proved at
// connection time until they reconnect.)
func (n *Node) SetName(name string) (*crypto.Card, error) {
	card, err := n.id.NewCard(name, nil, n.cfg.Now(), CardValidity)
	if err != nil {
		return nil, fmt.Errorf("issuing a card named %q: %w", name, err)
	}
	n.mu.Lock()
	n.card = card
	n.mu.Unlock()
	return card, nil
}
func (n *Node) Router() *router.Router { return n.router }
func (n *Node) Chat() *chat.App        { return n.chat }
func (n *Node) Groups() *group.Manager { return n.groups }
func (n *Node) Calls() *call.App       { return n.calls }
func (n *Node) Store() *store.Store    { return n.store }
func (n *Node) DataDir() string        { return n.cfg.DataDir }

// ListenAddrs lists where the node accepts links, in URL form.
func (n *Node) ListenAddrs() []string {
	n.mu.Lock()
	defer n.mu.Unlock()
	var out []string
	for _, l := range n.listeners {
		out = append(out, l.Addr())
	}
	return out
}
