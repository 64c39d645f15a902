// Package web is Tern's browser UI: a chat app in plain HTML, CSS and
// JavaScript embedded in the binary (no build step, nothing fetched from the
// internet), and the HTTP server that serves it with the local API.
//
// The server listens on loopback unless the user names another address.
// Every API request must carry the access token (Authorization: Bearer, the
// X-Tern-Token header, the cookie set by opening /?token=..., or for a
// WebSocket the subprotocol "tern-token.<token>"), and every
// request must name this machine in its Host header, so a web page from
// elsewhere can neither call the API nor reach it by DNS rebinding.
package web

import (
	"context"
	"crypto/subtle"
	"embed"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// DefaultAddr is where the daemon serves the UI unless told otherwise.
const DefaultAddr = "127.0.0.1:7338"

// TokenFile and AddrFile are the files in the data directory that hold the
// access token and the address the running daemon serves the UI on.
const (
	TokenFile = "web.token"
	AddrFile  = "web.addr"
)

// TokenProtocolPrefix starts the WebSocket subprotocol that carries the
// access token (a page's WebSocket cannot send an Authorization header).
const TokenProtocolPrefix = "tern-token."

// CookieName is the cookie that carries the token for a browser that opened
// the /?token= link.
const CookieName = "tern_token"

//go:embed static
var static embed.FS

// LoadToken reads the access token in dataDir, or creates one from rnd
// (32 bytes, hex) in a file only the owner can read. The token stays the
// same across restarts so an open browser tab keeps working.
func LoadToken(dataDir string, rnd io.Reader) (string, error) {
	path := filepath.Join(dataDir, TokenFile)
	b, err := os.ReadFile(path)
	if err == nil {
		tok := strings.TrimSpace(string(b))
		if len(tok) >= 32 {
			return tok, nil
		}
		return "", fmt.Errorf("web access token %s is damaged: delete it and restart tern to make a new one", path)
	}
	if !errors.Is(err, fs.ErrNotExist) {
		return "", fmt.Errorf("reading web access token: %w", err)
	}
	raw := make([]byte, 32)
	if _, err := io.ReadFull(rnd, raw); err != nil {
		return "", fmt.Errorf("making web access token: %w", err)
	}
	tok := hex.EncodeToString(raw)
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, []byte(tok+"\n"), 0o600); err != nil {
		return "", fmt.Errorf("saving web access token: %w", err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return "", fmt.Errorf("saving web access token: %w", err)
	}
	return tok, nil
}

// URL is the address to open in a browser: the UI at addr with the token in
// the fragment (which browsers never send to a server or in a Referer).
func URL(addr, token string) string {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return "http://" + addr + "/#token=" + token
	}
	if ip := net.ParseIP(host); host == "" || ip != nil && ip.IsUnspecified() {
		host = "127.0.0.1"
	}
	return "http://" + net.JoinHostPort(host, port) + "/#token=" + token
}

// Config is what Handler needs.
type Config struct {
	// API serves /v1/... (api.WebHandler); only requests with the token
	// reach it.
	API   http.Handler
	Token string
	// Addr is the address the server listens on. Host headers naming
	// loopback are always accepted; so are ones naming Addr's host, and
	// any IP address when Addr listens on every interface.
	Addr   string
	Logger *slog.Logger
}

type handler struct {
	cfg    Config
	files  http.Handler
	anyIP  bool
	extra  string
	logger *slog.Logger
}

// Handler serves the UI and, behind the token, the API.
func Handler(cfg Config) http.Handler {
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	sub, _ := fs.Sub(static, "static")
	h := &handler{cfg: cfg, files: http.FileServerFS(sub), logger: cfg.Logger}
	if host, _, err := net.SplitHostPort(cfg.Addr); err == nil {
		ip := net.ParseIP(host)
		switch {
		case host == "" || ip != nil && ip.IsUnspecified():
			h.anyIP = true
		default:
			h.extra = strings.ToLower(strings.Trim(host, "[]"))
		}
	}
	return h
}

// hostAllowed says whether the Host header names this machine: loopback,
// the listen host, or (when listening everywhere) an IP literal. A DNS
// rebinding attack always carries the attacker's domain name, never these.
func (h *handler) hostAllowed(hostport string) bool {
	host := hostport
	if hh, _, err := net.SplitHostPort(hostport); err == nil {
		host = hh
	}
	host = strings.ToLower(strings.Trim(host, "[]"))
	if host == "localhost" || host == h.extra && host != "" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && (ip.IsLoopback() || h.anyIP)
}

func (h *handler) tokenOK(r *http.Request) bool {
	var given []string
	if a, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer "); ok {
		given = append(given, a)
	}
	given = append(given, r.Header.Get("X-Tern-Token"))
	// A browser's WebSocket cannot set headers: it offers the token as a
	// subprotocol "tern-token.<token>" (the server never echoes it back).
	for _, p := range strings.Split(r.Header.Get("Sec-WebSocket-Protocol"), ",") {
		if t, ok := strings.CutPrefix(strings.TrimSpace(p), TokenProtocolPrefix); ok {
			given = append(given, t)
		}
	}
	if c, err := r.Cookie(CookieName); err == nil {
		given = append(given, c.Value)
	}
	for _, g := range given {
		if g != "" && subtle.ConstantTimeCompare([]byte(g), []byte(h.cfg.Token)) == 1 {
			return true
		}
	}
	return false
}

func refuse(w http.ResponseWriter, code int, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	json.NewEncoder(w).Encode(map[string]string{"error": msg})
}

func (h *handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	hd := w.Header()
	hd.Set("X-Content-Type-Options", "nosniff")
	hd.Set("X-Frame-Options", "DENY")
	hd.Set("Referrer-Policy", "no-referrer")
	hd.Set("Content-Security-Policy", "default-src 'self'; img-src 'self' blob: data:; style-src 'self'; script-src 'self'; connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'")
	if !h.hostAllowed(r.Host) {
		refuse(w, http.StatusForbidden, fmt.Sprintf("host %q is not this machine: open the address `tern ui` prints (http://127.0.0.1:...)", r.Host))
		return
	}
	// A page from another site may not drive the API even if it guessed
	// nothing: browsers name the page's origin on cross-site requests.
	if o := r.Header.Get("Origin"); o != "" && o != "null" {
		if u, err := url.Parse(o); err != nil || !strings.EqualFold(u.Host, r.Host) {
			refuse(w, http.StatusForbidden, "requests from other web sites are refused")
			return
		}
	}
	if strings.HasPrefix(r.URL.Path, "/v1/") || r.URL.Path == "/metrics" {
		if !h.tokenOK(r) {
			refuse(w, http.StatusUnauthorized, "missing or wrong access token: open the link that `tern ui` prints")
			return
		}
		h.cfg.API.ServeHTTP(w, r)
		return
	}
	if t := r.URL.Query().Get("token"); t != "" && r.URL.Path == "/" {
		if subtle.ConstantTimeCompare([]byte(t), []byte(h.cfg.Token)) != 1 {
			refuse(w, http.StatusUnauthorized, "wrong access token in the link: run `tern ui` again and open the link it prints")
			return
		}
		http.SetCookie(w, &http.Cookie{Name: CookieName, Value: h.cfg.Token, Path: "/", HttpOnly: true,
			SameSite: http.SameSiteStrictMode, MaxAge: 400 * 24 * 3600})
		http.Redirect(w, r, "/", http.StatusSeeOther)
		return
	}
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		refuse(w, http.StatusMethodNotAllowed, "the UI's pages are read-only: the API is under /v1/")
		return
	}
	hd.Set("Cache-Control", "no-cache")
	h.files.ServeHTTP(w, r)
}

// Server is the running web server.
type Server struct {
	srv    *http.Server
	ln     net.Listener
	cancel context.CancelFunc
}

// Listen opens addr for the web UI.
func Listen(addr string) (net.Listener, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("web UI on %s: %w (choose another address with --web ADDR, or --web off)", addr, err)
	}
	return ln, nil
}

// Serve serves h on ln until Close. Long requests (the event stream) end
// when Close is called.
func Serve(ln net.Listener, h http.Handler, log *slog.Logger) *Server {
	ctx, cancel := context.WithCancel(context.Background())
	s := &Server{ln: ln, cancel: cancel, srv: &http.Server{
		Handler: h, ReadHeaderTimeout: 10 * time.Second, IdleTimeout: 2 * time.Minute,
		BaseContext: func(net.Listener) context.Context { return ctx },
		ErrorLog:    slog.NewLogLogger(log.Handler(), slog.LevelDebug),
	}}
	go s.srv.Serve(ln)
	return s
}

// Addr is the address the server listens on.
func (s *Server) Addr() string { return s.ln.Addr().String() }

// Close ends open requests and stops the server.
func (s *Server) Close(ctx context.Context) error {
	s.cancel()
	return s.srv.Shutdown(ctx)
}
