// Command tern is the Tern node: `tern run` is the daemon; every other
// subcommand is a thin client of the daemon's local API.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
)

const usage = `tern: a delay-tolerant, end-to-end encrypted mesh messenger.

Usage:
  tern run [--data DIR] [--listen ADDR] [--link URL]... [--config FILE] [--name NAME]
           [--mdns on|browse|off] [--web ADDR|off]
  tern ui                          the link (with its access token) to the web UI
  tern id                          this node's address, contact card and QR code
  tern sas <contact>               short authentication string to compare with a contact
  tern contact add <tern:uri> [--name NAME]
  tern contacts
  tern peer add <url>              e.g. quic://192.0.2.7:7337 (add ?id=<address> to pin it)
  tern peer rm <url>
  tern peers                       links: state, RTT, bytes, queued bundles
  tern status [--metrics]          bundle counters, store use, routes
  tern send [--over-air-clear] <contact|group> <text>
  tern chat <contact|group>        interactive chat with delivery and read receipts
  tern inbox [--peer CONTACT|GROUP] [--limit N]
  tern groups                      group channels you are (or were) in
  tern group create <name> [contact...]
  tern group add <group> <contact>     tern group rm <group> <member>   (owner only)
  tern group show <group>          members, owner, epoch
  tern group send <group> <text>
  tern calls [--peer CONTACT] [--limit N]   voice call history (calls are made in the web UI)
  tern file send <contact> <path> [--over-radio]
                                   send a file, with a progress bar (Ctrl-C leaves it to the daemon)
  tern files                       file transfers: progress, state
  tern file get <id> [dest]        save a received file
  tern file cancel <id>            stop a transfer (or forget a finished one)
  tern file allow-radio <id>       let a transfer held off radio cross radio links
  tern hw list                     known LoRa boards and their pins, serial ports
  tern hw probe <board>[?pins]     check that a LoRa HAT answers
  tern sim [--seed N] [--only tern|epidemic|flooding] <scenario.json>
                                   run a mesh scenario in virtual time and print a report

Links (--link, tern peer add): quic://host:port[?id=ADDRESS]
  rnode:///dev/ttyUSB0?freq=869.525&bw=125&sf=9&txp=14[&region=EU868]
  e22:///dev/ttyS0?freq=868.125&air=2.4k   rak3172:///dev/ttyUSB1?freq=869.525&sf=9&bw=125

Every command takes --data DIR (default $TERN_DATA, else the user data directory).
`

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	err := runCLI(ctx, os.Args[1:], os.Stdin, os.Stdout, os.Stderr)
	if errors.Is(err, flag.ErrHelp) {
		os.Exit(0)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "tern:", err)
		os.Exit(1)
	}
}

// defaultDataDir is $TERN_DATA, else $XDG_DATA_HOME/tern, else
// ~/.local/share/tern.
func defaultDataDir() string {
	if d := os.Getenv("TERN_DATA"); d != "" {
		return d
	}
	if d := os.Getenv("XDG_DATA_HOME"); d != "" {
		return filepath.Join(d, "tern")
	}
	if h, err := os.UserHomeDir(); err == nil {
		return filepath.Join(h, ".local", "share", "tern")
	}
	return "tern-data"
}

func socketPath(dataDir string) string { return filepath.Join(dataDir, "tern.sock") }

func runCLI(ctx context.Context, args []string, in io.Reader, out, errOut io.Writer) error {
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
		fmt.Fprint(out, usage)
		return nil
	}
	cmd, rest := args[0], args[1:]
	if cmd == "contact" || cmd == "peer" || cmd == "group" || cmd == "file" {
		if len(rest) == 0 || strings.HasPrefix(rest[0], "-") {
			return fmt.Errorf("`tern %s` needs a subcommand: see `tern help`", cmd)
		}
		cmd, rest = cmd+" "+rest[0], rest[1:]
	}
	switch cmd {
	case "run":
		return cmdRun(ctx, rest, errOut)
	case "hw":
		return cmdHW(ctx, rest, out)
	case "ui":
		return cmdUI(ctx, rest, out)
	case "sim":
		return cmdSim(ctx, rest, out)
	case "calls":
		return cmdCalls(ctx, rest, out)
	case "id", "sas", "contact add", "contacts", "peer add", "peer rm", "peers", "status", "send", "chat", "inbox":
		return clientCommand(ctx, cmd, rest, in, out)
	case "groups", "group create", "group add", "group rm", "group show", "group send":
		return groupCommand(ctx, cmd, rest, out)
	case "file send", "file get", "file cancel", "file allow-radio", "files":
		return fileCommand(ctx, cmd, rest, out)
	}
	return fmt.Errorf("unknown command %q: see `tern help`", cmd)
}
