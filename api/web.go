package api

// Endpoints the web UI adds to the local API. WebHandler serves them next
// to everything Handler serves; the web server puts both behind its access
// token. They change nothing about the endpoints of Handler.
//
//	GET /v1/profile          this node as the UI shows it: name, whether the
//	                         user chose it, card links, listen addresses
//	PUT /v1/profile {name}   choose the display name (saved in the data
//	                         directory, on every card issued from now on)
//	GET /v1/card.png         the QR code of the compact card, as a PNG

import (
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"rsc.io/qr"

	"github.com/ternmesh/tern/crypto"
	"github.com/ternmesh/tern/node"
)

// NameFile is the file in the data directory that holds the display name
// chosen in the web UI.
const NameFile = "name"

// MaxNameLen bounds a display name, in characters.
const MaxNameLen = 40

// SavedName returns the display name saved by the web UI in dataDir, or ""
// when the user never chose one.
func SavedName(dataDir string) string {
	b, err := os.ReadFile(filepath.Join(dataDir, NameFile))
	if err != nil {
		return ""
	}
	return strings.TrimSpace(string(b))
}

// Profile is the node's display name and the card issued with it. It is
// safe for concurrent use.
type Profile struct {
	n *node.Node

	mu    sync.Mutex
	named bool
}

// NewProfile starts from the node's card; named says whether the user has
// chosen the name (in the UI, or with --name).
// (now is unused since the node issues cards itself; kept for callers.)
func NewProfile(n *node.Node, named bool, now func() time.Time) *Profile {
	return &Profile{n: n, named: named || SavedName(n.DataDir()) != ""}
}

// Card returns the node's current card.
func (p *Profile) Card() *crypto.Card { return p.n.Card() }

// SetName issues a card with name and saves name for the next start.
func (p *Profile) SetName(name string) error {
	name = strings.TrimSpace(name)
	switch {
	case name == "":
		return errors.New("the name is empty: type the name your contacts will see")
	case utf8.RuneCountInString(name) > MaxNameLen:
		return fmt.Errorf("the name is %d characters long: use at most %d", utf8.RuneCountInString(name), MaxNameLen)
	case strings.ContainsAny(name, "\r\n\t"):
		return errors.New("the name contains a line break or tab: use a single line")
	}
	path := filepath.Join(p.n.DataDir(), NameFile)
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, []byte(name+"\n"), 0o600); err != nil {
		return fmt.Errorf("saving the name: %w", err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return fmt.Errorf("saving the name: %w", err)
	}
	if _, err := p.n.SetName(name); err != nil {
		return err
	}
	p.mu.Lock()
	p.named = true
	p.mu.Unlock()
	return nil
}

// ProfileInfo is the answer of GET /v1/profile.
type ProfileInfo struct {
	Address string   `json:"address"`
	Name    string   `json:"name"`
	Named   bool     `json:"named"` // false until the user chose a name
	URI     string   `json:"uri"`
	QRURI   string   `json:"qr_uri"`
	Listen  []string `json:"listen"`
}

// SetProfile is the body of PUT /v1/profile.
type SetProfile struct {
	Name string `json:"name"`
}

type webServer struct {
	n *node.Node
	p *Profile
}

// WebHandler serves the local API (Handler) plus the endpoints the web UI
// adds (see the top of this file).
func WebHandler(n *node.Node, p *Profile, log *slog.Logger) http.Handler {
	s := &webServer{n: n, p: p}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /v1/profile", s.profile)
	mux.HandleFunc("PUT /v1/profile", s.setProfile)
	mux.HandleFunc("GET /v1/card.png", s.cardPNG)
	mux.Handle("/", Handler(n, log))
	return mux
}

func (s *webServer) info() ProfileInfo {
	c := s.p.Card()
	s.p.mu.Lock()
	named := s.p.named
	s.p.mu.Unlock()
	return ProfileInfo{Address: s.n.Identity().Address().String(), Name: c.Name, Named: named,
		URI: c.URI(), QRURI: c.CompactURI(), Listen: s.n.ListenAddrs()}
}

func (s *webServer) profile(w http.ResponseWriter, r *http.Request) {
	reply(w, http.StatusOK, s.info())
}

func (s *webServer) setProfile(w http.ResponseWriter, r *http.Request) {
	var req SetProfile
	if !decode(w, r, &req) {
		return
	}
	if err := s.p.SetName(req.Name); err != nil {
		code := http.StatusBadRequest
		if errors.Is(err, fs.ErrPermission) {
			code = http.StatusInternalServerError
		}
		fail(w, code, err)
		return
	}
	reply(w, http.StatusOK, s.info())
}

func (s *webServer) cardPNG(w http.ResponseWriter, r *http.Request) {
	code, err := qr.Encode(s.p.Card().CompactURI(), qr.L)
	if err != nil {
		fail(w, http.StatusInternalServerError, fmt.Errorf("card too large for a QR code: %w", err))
		return
	}
	code.Scale = 6
	w.Header().Set("Content-Type", "image/png")
	w.Header().Set("Cache-Control", "no-store")
	w.Write(code.PNG())
}
