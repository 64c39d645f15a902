package main

import (
	"bufio"
	"context"
	"crypto/ed25519"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/ternmesh/tern/api"
	"github.com/ternmesh/tern/crypto"
	"github.com/ternmesh/tern/mdns"
	"github.com/ternmesh/tern/node"
	"github.com/ternmesh/tern/transports"
	"github.com/ternmesh/tern/transports/quiclink"
)

// DefaultListen is the UDP address the daemon accepts QUIC links on.
const DefaultListen = "0.0.0.0:7337"

type multiFlag []string

func (m *multiFlag) String() string     { return strings.Join(*m, ",") }
func (m *multiFlag) Set(v string) error { *m = append(*m, v); return nil }

// runConfig is everything `tern run` can be told, by flags or config file.
type runConfig struct {
	data, listen, name, logLevel string
	links                        []string
	mdns                         string // LAN discovery: on, browse or off
	web                          string // web UI address, or "off"
}

func cmdRun(ctx context.Context, args []string, errOut io.Writer) error {
	fs := flag.NewFlagSet("tern run", flag.ContinueOnError)
	var rc runConfig
	var links multiFlag
	fs.StringVar(&rc.data, "data", defaultDataDir(), "data directory: identity, store, API socket")
	fs.StringVar(&rc.listen, "listen", DefaultListen, `UDP address for incoming QUIC links ("off" to only dial out)`)
	fs.StringVar(&rc.name, "name", "", "name on this node's contact card")
	fs.StringVar(&rc.logLevel, "log-level", "info", "debug, info, warn or error")
	fs.StringVar(&rc.web, "web", defaultWebAddr, `address of the web UI (loopback unless you name another; "off" to disable); `+"`tern ui`"+` prints its link`)
	fs.StringVar(&rc.mdns, "mdns", "on", "LAN discovery by mDNS: on (announce and browse), browse (find others without announcing) or off")
	fs.Var(&links, "link", "a link to keep connected, e.g. quic://host:7337 (repeatable)")
	config := fs.String("config", "", "config file (see tern.conf.example); flags given on the command line win")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("tern run takes no arguments (got %q): links go in --link URL", fs.Args())
	}
	if *config != "" {
		set := map[string]bool{}
		fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
		if err := loadConfig(*config, &rc, set); err != nil {
			return err
		}
	}
	rc.links = append(rc.links, links...)
	if _, err := mdns.ParseMode(rc.mdns); err != nil {
		return fmt.Errorf("--mdns: %w", err)
	}
	var level slog.Level
	if err := level.UnmarshalText([]byte(rc.logLevel)); err != nil {
		return fmt.Errorf("--log-level %q: use debug, info, warn or error", rc.logLevel)
	}
	log := slog.New(slog.NewTextHandler(errOut, &slog.HandlerOptions{Level: level}))
	return runDaemon(ctx, rc, log)
}

func runDaemon(ctx context.Context, rc runConfig, log *slog.Logger) error {
	n, err := node.Open(node.Config{DataDir: rc.data, Name: displayName(rc), Logger: log})
	if err != nil {
		return err
	}
	defer n.Close()
	sock, err := api.Listen(socketPath(rc.data))
	if err != nil {
		return err
	}
	listen := rc.listen
	if listen == "off" {
		listen = ""
	}
	qt, err := quiclink.New(quiclink.Config{
		Key:   n.Identity().SigningKey(),
		Proof: n.Card().Marshal(),
		Verify: func(pub ed25519.PublicKey, proof []byte) ([16]byte, error) {
			return crypto.VerifyLinkProof(pub, proof, time.Now())
		},
		Listen: listen,
		Logger: log,
	})
	if err != nil {
		sock.Close()
		return fmt.Errorf("QUIC on %s: %w (choose another with --listen, or --listen off)", listen, err)
	}
	// The link registry: every scheme the daemon can dial.
	links := node.Links{Dialers: map[string]transports.Dialer{}, Radios: radioOpeners(log), RadioChecks: radioChecks()}
	for _, s := range qt.Schemes() {
		links.Dialers[s] = qt
	}
	if listen != "" {
		links.Listeners = append(links.Listeners, qt)
	}
	if err := n.Start(links, rc.links); err != nil {
		sock.Close()
		return err
	}
	stopLAN := startLAN(ctx, n, rc.mdns, log)
	defer stopLAN()
	stopWeb, err := startWeb(rc, n, log)
	if err != nil {
		sock.Close()
		return err
	}
	defer stopWeb()
	srv := &http.Server{Handler: api.Handler(n, log), ReadHeaderTimeout: 10 * time.Second}
	go srv.Serve(sock)
	log.Info("tern is running", "address", n.Identity().Address().String(), "data", rc.data,
		"api", socketPath(rc.data), "listen", n.ListenAddrs())
	<-ctx.Done()
	log.Info("shutting down")
	shutdownCtx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	srv.Shutdown(shutdownCtx)
	os.Remove(socketPath(rc.data))
	return nil
}

// loadConfig reads a config file of `key = value` lines (# starts a
// comment; `link` may repeat). Keys already set by flags are skipped.
func loadConfig(path string, rc *runConfig, set map[string]bool) error {
	f, err := os.Open(path)
	if err != nil {
		return fmt.Errorf("config: %w", err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	line := 0
	for sc.Scan() {
		line++
		s := strings.TrimSpace(sc.Text())
		if i := strings.Index(s, "#"); i == 0 {
			continue
		}
		if s == "" {
			continue
		}
		k, v, ok := strings.Cut(s, "=")
		if !ok {
			return fmt.Errorf("%s:%d: want `key = value`, got %q", path, line, s)
		}
		k, v = strings.TrimSpace(k), strings.TrimSpace(v)
		if set[k] {
			continue
		}
		switch k {
		case "data":
			if !filepath.IsAbs(v) {
				v = filepath.Join(filepath.Dir(path), v)
			}
			rc.data = v
		case "listen":
			rc.listen = v
		case "name":
			rc.name = v
		case "log-level":
			rc.logLevel = v
		case "link":
			rc.links = append(rc.links, v)
		case "mdns":
			rc.mdns = v
		case "web":
			rc.web = v
		default:
			return fmt.Errorf("%s:%d: unknown option %q (known: data, listen, name, log-level, link, mdns, web)", path, line, k)
		}
	}
	if err := sc.Err(); err != nil {
		return fmt.Errorf("config %s: %w", path, err)
	}
	return nil
}

var errNoQR = errors.New("card too large for a QR code")
