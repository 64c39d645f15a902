package main

import (
	"context"
	"crypto/rand"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/ternmesh/tern/api"
	"github.com/ternmesh/tern/node"
	"github.com/ternmesh/tern/web"
)

// displayName is the name for the node's card: the one chosen in the web
// UI if any, else --name (or the config file's name).
func displayName(rc runConfig) string {
	if n := api.SavedName(rc.data); n != "" {
		return n
	}
	return rc.name
}

// startWeb serves the web UI on rc.web ("off": not at all) and returns the
// function that stops it.
func startWeb(rc runConfig, n *node.Node, log *slog.Logger) (func(), error) {
	if rc.web == "off" || rc.web == "" {
		return func() {}, nil
	}
	token, err := web.LoadToken(rc.data, rand.Reader)
	if err != nil {
		return nil, err
	}
	ln, err := web.Listen(rc.web)
	if err != nil && rc.web == defaultWebAddr {
		// Another daemon (another user's, say) holds the default port:
		// chat still works from the CLI, so say how to get the UI back.
		log.Warn("web UI not started: its default address is taken; choose another with --web ADDR", "err", err)
		return func() {}, nil
	}
	if err != nil {
		return nil, err
	}
	addr := ln.Addr().String()
	addrFile := filepath.Join(rc.data, web.AddrFile)
	if err := os.WriteFile(addrFile, []byte(addr+"\n"), 0o600); err != nil {
		ln.Close()
		return nil, fmt.Errorf("saving the web UI address: %w", err)
	}
	profile := api.NewProfile(n, false, nil)
	h := web.Handler(web.Config{API: api.WebHandler(n, profile, log), Token: token, Addr: addr, Logger: log})
	srv := web.Serve(ln, h, log)
	log.Info("web UI", "addr", addr, "open", "run `tern ui` for the link with the access token")
	return func() {
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
		defer cancel()
		srv.Close(ctx)
		os.Remove(addrFile)
	}, nil
}

// cmdUI prints the link that opens the web UI of the running daemon, with
// its access token. main.go's switch calls it for `tern ui`.
func cmdUI(ctx context.Context, args []string, out io.Writer) error {
	fs := flag.NewFlagSet("tern ui", flag.ContinueOnError)
	data := fs.String("data", defaultDataDir(), "data directory of the daemon")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("tern ui takes no arguments (got %q)", fs.Args())
	}
	u, err := uiURL(ctx, *data)
	if err != nil {
		return err
	}
	fmt.Fprintln(out, u)
	return nil
}

// uiURL is the link to the web UI of the daemon running on dataDir.
func uiURL(ctx context.Context, dataDir string) (string, error) {
	b, err := os.ReadFile(filepath.Join(dataDir, web.AddrFile))
	if errors.Is(err, fs.ErrNotExist) {
		return "", fmt.Errorf("no web UI is running for %s: start the daemon with `tern run` (without --web off), and give `tern ui` the same --data", dataDir)
	}
	if err != nil {
		return "", fmt.Errorf("reading the web UI address: %w", err)
	}
	addr := strings.TrimSpace(string(b))
	u := web.URL(addr, "")
	host := strings.TrimSuffix(strings.TrimPrefix(u, "http://"), "/#token=")
	var d net.Dialer
	dctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	c, err := d.DialContext(dctx, "tcp", host)
	if err != nil {
		return "", fmt.Errorf("the web UI at %s does not answer: is `tern run` still running for %s?", host, dataDir)
	}
	c.Close()
	token, err := os.ReadFile(filepath.Join(dataDir, web.TokenFile))
	if err != nil {
		return "", fmt.Errorf("reading the web access token: %w (run `tern ui` as the user that runs the daemon)", err)
	}
	return web.URL(addr, strings.TrimSpace(string(token))), nil
}

// defaultWebAddr is the default of `tern run --web`.
const defaultWebAddr = web.DefaultAddr
