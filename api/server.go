// Package api is the daemon's local API: HTTP with JSON bodies on a unix
// socket in the data directory (only the owner can connect), plus the
// Prometheus /metrics page. Every CLI subcommand except `run` is a thin
// client of it (see Client); the web UI will be too.
//
// Endpoints:
//
//	GET    /v1/id                  address, contact card URI, name
//	GET    /v1/sas?contact=X       short authentication string with contact X
//	GET    /v1/contacts            list      POST /v1/contacts {uri,name}
//	GET    /v1/peers               links and neighbours
//	GET    /v1/radio               recent signal and airtime readings of radio neighbours
//	POST   /v1/peers {url}         connect and remember a link
//	DELETE /v1/peers?url=U         forget a link
//	GET    /v1/status              counters, store use, routes
//	GET    /v1/bundles?limit=N     bundles held in the store (routing fields and raw bytes)
//	POST   /v1/messages {to,text}  send a message
//	GET    /v1/messages?peer=X&limit=N   history (incoming and outgoing)
//	GET    /v1/events              newline-delimited JSON events (chat, files), until closed
//	...    /v1/files               file transfers (see files.go)
//	GET    /metrics                Prometheus text format
//	/v1/groups..., POST /v1/messages/read   group channels and read receipts (groups.go)
//	       /v1/calls...            voice calls: see calls.go
package api

import (
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"strconv"
	"time"

	"github.com/ternmesh/tern/chat"
	"github.com/ternmesh/tern/crypto"
	"github.com/ternmesh/tern/node"
	"github.com/ternmesh/tern/router"
)

// MaxBody bounds request bodies; a message text is at most 64 KiB.
const MaxBody = 1 << 20

// Listen opens the unix socket at path, replacing a stale socket left by a
// crashed daemon but refusing to steal one that a live daemon answers on.
func Listen(path string) (net.Listener, error) {
	if c, err := net.DialTimeout("unix", path, time.Second); err == nil {
		c.Close()
		return nil, fmt.Errorf("another tern daemon is already running on %s: stop it, or use another --data directory", path)
	}
	os.Remove(path)
	l, err := net.Listen("unix", path)
	if err != nil {
		return nil, fmt.Errorf("local API socket %s: %w", path, err)
	}
	if err := os.Chmod(path, 0o600); err != nil {
		l.Close()
		return nil, err
	}
	return l, nil
}

type server struct {
	n   *node.Node
	log *slog.Logger
}

// Handler serves the local API for n.
func Handler(n *node.Node, log *slog.Logger) http.Handler {
	s := &server{n: n, log: log}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /v1/id", s.id)
	mux.HandleFunc("GET /v1/sas", s.sas)
	mux.HandleFunc("GET /v1/contacts", s.contacts)
	mux.HandleFunc("POST /v1/contacts", s.addContact)
	mux.HandleFunc("GET /v1/peers", s.peers)
	mux.HandleFunc("GET /v1/radio", func(w http.ResponseWriter, r *http.Request) { reply(w, http.StatusOK, s.n.RadioHistory()) })
	mux.HandleFunc("POST /v1/peers", s.addPeer)
	mux.HandleFunc("DELETE /v1/peers", s.removePeer)
	mux.HandleFunc("GET /v1/status", s.status)
	mux.HandleFunc("GET /v1/bundles", s.bundles)
	mux.HandleFunc("POST /v1/messages", s.send)
	mux.HandleFunc("GET /v1/messages", s.messages)
	mux.HandleFunc("GET /v1/events", s.events)
	mux.HandleFunc("GET /metrics", s.metrics)
	registerGroups(mux, s) // groups.go
	s.callRoutes(mux)      // calls.go
	s.registerFiles(mux)   // files.go
	return mux
}

// Error is the body of every failed request.
type Error struct {
	Error string `json:"error"`
}

func reply(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	json.NewEncoder(w).Encode(v)
}

func fail(w http.ResponseWriter, code int, err error) { reply(w, code, Error{Error: err.Error()}) }

// decode reads a JSON request body strictly.
func decode(w http.ResponseWriter, r *http.Request, v any) bool {
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, MaxBody))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		fail(w, http.StatusBadRequest, fmt.Errorf("bad request body: %w", err))
		return false
	}
	return true
}

// ID is the answer of GET /v1/id.
type ID struct {
	Address string    `json:"address"`
	Name    string    `json:"name"`
	URI     string    `json:"uri"`
	QRURI   string    `json:"qr_uri"`
	Expires time.Time `json:"expires"`
	Listen  []string  `json:"listen"`
}

func (s *server) id(w http.ResponseWriter, r *http.Request) {
	c := s.n.Card()
	reply(w, http.StatusOK, ID{
		Address: s.n.Identity().Address().String(), Name: c.Name, URI: c.URI(), QRURI: c.CompactURI(),
		Expires: time.Unix(c.Expires, 0).UTC(), Listen: s.n.ListenAddrs(),
	})
}

func (s *server) sas(w http.ResponseWriter, r *http.Request) {
	_, card, err := s.n.Chat().Resolve(r.URL.Query().Get("contact"))
	if err != nil {
		fail(w, http.StatusNotFound, err)
		return
	}
	reply(w, http.StatusOK, map[string]string{"sas": crypto.SAS(s.n.Card(), card), "contact": card.Address().String()})
}

func (s *server) contacts(w http.ResponseWriter, r *http.Request) {
	cs, err := s.n.Chat().Contacts()
	if err != nil {
		fail(w, http.StatusInternalServerError, err)
		return
	}
	reply(w, http.StatusOK, cs)
}

// AddContact is the body of POST /v1/contacts.
type AddContact struct {
	URI  string `json:"uri"`
	Name string `json:"name"`
}

func (s *server) addContact(w http.ResponseWriter, r *http.Request) {
	var req AddContact
	if !decode(w, r, &req) {
		return
	}
	card, err := crypto.ParseCardURI(req.URI, time.Now())
	if err != nil {
		fail(w, http.StatusBadRequest, fmt.Errorf("contact card: %w", err))
		return
	}
	c, err := s.n.Chat().AddContact(card, req.Name)
	if err != nil {
		fail(w, http.StatusBadRequest, err)
		return
	}
	reply(w, http.StatusOK, c)
}

func (s *server) peers(w http.ResponseWriter, r *http.Request) {
	reply(w, http.StatusOK, s.n.Router().Peers())
}

// AddPeer is the body of POST /v1/peers.
type AddPeer struct {
	URL string `json:"url"`
}

func (s *server) addPeer(w http.ResponseWriter, r *http.Request) {
	var req AddPeer
	if !decode(w, r, &req) {
		return
	}
	if err := s.n.AddPeer(req.URL); err != nil {
		fail(w, http.StatusBadRequest, err)
		return
	}
	reply(w, http.StatusOK, map[string]string{"url": req.URL})
}

func (s *server) removePeer(w http.ResponseWriter, r *http.Request) {
	if err := s.n.RemovePeer(r.URL.Query().Get("url")); err != nil {
		fail(w, http.StatusInternalServerError, err)
		return
	}
	reply(w, http.StatusOK, map[string]string{})
}

// Status is the answer of GET /v1/status.
type Status struct {
	Address string             `json:"address"`
	Metrics router.Metrics     `json:"metrics"`
	Routes  []router.RouteInfo `json:"routes"`
}

func (s *server) status(w http.ResponseWriter, r *http.Request) {
	reply(w, http.StatusOK, Status{Address: s.n.Identity().Address().String(), Metrics: s.n.Router().Metrics(), Routes: s.n.Router().Routes()})
}

func (s *server) metrics(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "text/plain; version=0.0.4")
	s.n.Router().Metrics().WritePrometheus(w)
}

// Send is the body of POST /v1/messages.
type Send struct {
	To   string `json:"to"`
	Text string `json:"text"`
	// OverAirClear sends the message signed but unencrypted so it may
	// cross amateur-radio links; every relay can read it.
	OverAirClear bool `json:"over_air_clear,omitempty"`
}

func (s *server) send(w http.ResponseWriter, r *http.Request) {
	var req Send
	if !decode(w, r, &req) {
		return
	}
	if s.isGroup(req.To) {
		s.sendToGroup(w, req.To, req.Text, req.OverAirClear)
		return
	}
	rec, err := s.n.Chat().SendWith(req.To, req.Text, chat.SendOptions{OverAirClear: req.OverAirClear})
	if err != nil {
		fail(w, http.StatusBadRequest, err)
		return
	}
	reply(w, http.StatusOK, rec)
}

func (s *server) messages(w http.ResponseWriter, r *http.Request) {
	limit, _ := strconv.Atoi(r.URL.Query().Get("limit"))
	peer := r.URL.Query().Get("peer")
	var recs []chat.Record
	var err error
	switch {
	case peer == "":
		recs, err = s.allMessages(limit)
	case s.isGroup(peer):
		recs, err = s.n.Groups().History(peer, limit)
	default:
		recs, err = s.n.Chat().History(peer, limit)
	}
	if err != nil {
		fail(w, http.StatusBadRequest, err)
		return
	}
	reply(w, http.StatusOK, recs)
}

func (s *server) events(w http.ResponseWriter, r *http.Request) {
	fl, ok := w.(http.Flusher)
	if !ok {
		fail(w, http.StatusInternalServerError, errors.New("streaming unsupported"))
		return
	}
	w.Header().Set("Content-Type", "application/x-ndjson")
	w.WriteHeader(http.StatusOK)
	fl.Flush()
	enc := json.NewEncoder(w)
	for e := range s.eventStream(r.Context()) {
		if enc.Encode(e) != nil {
			return
		}
		fl.Flush()
	}
}

// HeldBundle is one bundle in the store as GET /v1/bundles shows it: what a
// relay can see of it, which is all a relay has.
type HeldBundle struct {
	ID        string    `json:"id"`
	Dest      string    `json:"dest"`
	Neighbour string    `json:"from_neighbour,omitempty"` // empty: originated here
	NextHop   string    `json:"next_hop,omitempty"`       // empty: no route yet
	Size      int       `json:"size"`
	Received  time.Time `json:"received"`
	Expires   time.Time `json:"expires"`
	Raw       []byte    `json:"raw"`
}

func (s *server) bundles(w http.ResponseWriter, r *http.Request) {
	limit, _ := strconv.Atoi(r.URL.Query().Get("limit"))
	if limit <= 0 {
		limit = 1000
	}
	recs, err := s.n.Store().All(limit)
	if err != nil {
		fail(w, http.StatusInternalServerError, err)
		return
	}
	out := make([]HeldBundle, 0, len(recs))
	hex := func(a [16]byte) string {
		if a == ([16]byte{}) {
			return ""
		}
		return crypto.Address(a).String()
	}
	for _, rec := range recs {
		out = append(out, HeldBundle{
			ID: rec.ID.String(), Dest: hex(rec.Dest), Neighbour: hex(rec.From), NextHop: hex(rec.NextHop),
			Size: len(rec.Raw), Received: time.UnixMilli(rec.Received).UTC(), Expires: time.UnixMilli(rec.Expires).UTC(), Raw: rec.Raw,
		})
	}
	reply(w, http.StatusOK, out)
}
