package main

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/ternmesh/tern/api"
	"github.com/ternmesh/tern/files"
	"github.com/ternmesh/tern/router"
)

// fileCommand runs `tern file send|get|cancel` and `tern files`.
func fileCommand(ctx context.Context, cmd string, args []string, out io.Writer) error {
	fl := flag.NewFlagSet("tern "+cmd, flag.ContinueOnError)
	data := fl.String("data", defaultDataDir(), "data directory of the daemon")
	overRadio := fl.Bool("over-radio", false, "let the file cross radio links (file send): it may take hours of airtime")
	pos, err := parseInterleaved(fl, args)
	if err != nil {
		return err
	}
	c := api.NewClient(socketPath(*data))
	switch cmd {
	case "files":
		var ts []files.Transfer
		if err := c.Do(ctx, "GET", "/v1/files", nil, &ts); err != nil {
			return err
		}
		printTransfers(out, ts)
		return nil
	case "file send":
		if len(pos) != 2 {
			return errors.New("usage: tern file send <contact|group> <path> [--over-radio]")
		}
		return fileSend(ctx, c, pos[0], pos[1], *overRadio, out)
	case "file get":
		if len(pos) < 1 || len(pos) > 2 {
			return errors.New("usage: tern file get <id> [destination]")
		}
		dest := ""
		if len(pos) == 2 {
			dest = pos[1]
		}
		return fileGet(ctx, c, pos[0], dest, out)
	case "file cancel", "file allow-radio":
		if len(pos) != 1 {
			return fmt.Errorf("usage: tern %s <id>", cmd)
		}
		t, err := findTransfer(ctx, c, pos[0])
		if err != nil {
			return err
		}
		method, path := "DELETE", "/v1/files/"+t.ID
		if cmd == "file allow-radio" {
			method, path = "POST", path+"/over-radio"
		}
		if err := c.Do(ctx, method, path, nil, &t); err != nil {
			return err
		}
		fmt.Fprintf(out, "%s: %s", t.Name, t.State)
		if t.OverRadio && !t.Incoming {
			fmt.Fprint(out, ", allowed over radio")
		}
		fmt.Fprintln(out)
		return nil
	}
	return fmt.Errorf("unknown command %q", cmd)
}

// findTransfer resolves a transfer ID or a unique prefix of one.
func findTransfer(ctx context.Context, c *api.Client, id string) (files.Transfer, error) {
	var ts []files.Transfer
	if err := c.Do(ctx, "GET", "/v1/files", nil, &ts); err != nil {
		return files.Transfer{}, err
	}
	var hits []files.Transfer
	for _, t := range ts {
		if t.ID == strings.ToLower(id) {
			return t, nil
		}
		if len(id) >= 4 && strings.HasPrefix(t.ID, strings.ToLower(id)) {
			hits = append(hits, t)
		}
	}
	switch len(hits) {
	case 0:
		return files.Transfer{}, fmt.Errorf("no transfer %q: list them with `tern files`", id)
	case 1:
		return hits[0], nil
	}
	return files.Transfer{}, fmt.Errorf("%q matches %d transfers: give more of the ID", id, len(hits))
}

func fileSend(ctx context.Context, c *api.Client, to, path string, overRadio bool, out io.Writer) error {
	abs, err := filepath.Abs(path)
	if err != nil {
		return err
	}
	// Follow events from before the send so none is missed.
	evCtx, stopEvents := context.WithCancel(ctx)
	defer stopEvents()
	evs := make(chan files.Event, 256)
	go c.FileEvents(evCtx, func(e files.Event) {
		select {
		case evs <- e:
		default:
		}
	})
	var raw json.RawMessage
	if err := c.Do(ctx, "POST", "/v1/files", api.SendFile{To: to, Path: abs, OverRadio: overRadio}, &raw); err != nil {
		return err
	}
	var t files.Transfer
	var bt files.Batch
	if err := json.Unmarshal(raw, &bt); err == nil && bt.Transfers != nil {
		return followBatch(ctx, c, bt, evs, out)
	}
	if err := json.Unmarshal(raw, &t); err != nil {
		return fmt.Errorf("reading the daemon's answer: %w", err)
	}
	who := t.PeerName
	if who == "" {
		who = to
	}
	fmt.Fprintf(out, "sending %s (%s, %d chunks) to %s; transfer %s\n", t.Name, router.FormatSize(t.Size), t.Chunks, who, t.ID[:8])
	bar := newProgress(out, time.Now())
	note := ""
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	for {
		if t.Note != note && t.Note != "" {
			bar.clear()
			fmt.Fprintln(out, "note:", t.Note)
		}
		note = t.Note
		bar.draw(t.Bytes, t.Size, t.State)
		switch t.State {
		case files.StateDone:
			bar.end()
			fmt.Fprintf(out, "delivered: %s has %s (SHA-256 checked)\n", who, t.Name)
			return nil
		case files.StateFailed, files.StateCancelled:
			bar.end()
			return fmt.Errorf("%s %s: %s", t.Name, t.State, t.Error)
		}
		select {
		case <-ctx.Done():
			bar.end()
			fmt.Fprintf(out, "the transfer goes on in the daemon: follow it with `tern files`\n")
			return nil
		case e := <-evs:
			if e.File.ID == t.ID {
				t = e.File
			}
		case <-tick.C:
			var now files.Transfer
			if err := c.Do(ctx, "GET", "/v1/files/"+t.ID, nil, &now); err == nil {
				t = now
			}
		}
	}
}

// progress draws one line: a bar, percent, bytes and rate.
type progress struct {
	out   io.Writer
	start time.Time
	width int
	drawn bool
}

func newProgress(out io.Writer, start time.Time) *progress {
	return &progress{out: out, start: start, width: 30}
}

func (p *progress) draw(bytes, size int64, state string) {
	frac := 1.0
	if size > 0 {
		frac = float64(bytes) / float64(size)
	}
	n := int(frac * float64(p.width))
	rate := ""
	if secs := time.Since(p.start).Seconds(); secs > 0.5 && bytes > 0 {
		rate = "  " + router.FormatSize(int64(float64(bytes)/secs)) + "/s"
	}
	fmt.Fprintf(p.out, "\r[%s%s] %3.0f%%  %s of %s%s  %s   ", strings.Repeat("#", n), strings.Repeat("-", p.width-n),
		100*frac, router.FormatSize(bytes), router.FormatSize(size), rate, state)
	p.drawn = true
}

func (p *progress) clear() {
	if p.drawn {
		fmt.Fprint(p.out, "\r"+strings.Repeat(" ", p.width+60)+"\r")
		p.drawn = false
	}
}

func (p *progress) end() {
	if p.drawn {
		fmt.Fprintln(p.out)
		p.drawn = false
	}
}

func fileGet(ctx context.Context, c *api.Client, id, dest string, out io.Writer) error {
	t, err := findTransfer(ctx, c, id)
	if err != nil {
		return err
	}
	if !t.Incoming {
		return fmt.Errorf("transfer %s is a file you send, not one you received", t.ID[:8])
	}
	if t.State != files.StateDone {
		return fmt.Errorf("%s is not received yet (%s, %s of %s): wait for it, see `tern files`", t.Name, t.State, router.FormatSize(t.Bytes), router.FormatSize(t.Size))
	}
	if dest == "" {
		dest = t.Name
	}
	if st, err := os.Stat(dest); err == nil && st.IsDir() {
		dest = filepath.Join(dest, t.Name)
	}
	if _, err := os.Stat(dest); err == nil {
		return fmt.Errorf("%s exists already: give another destination (tern file get %s <path>)", dest, t.ID[:8])
	} else if !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	tmp, err := os.CreateTemp(filepath.Dir(dest), ".tern-get-*")
	if err != nil {
		return fmt.Errorf("cannot write next to %s: %w", dest, err)
	}
	defer os.Remove(tmp.Name())
	h := sha256.New()
	n, err := c.Download(ctx, "/v1/files/"+url.PathEscape(t.ID)+"/content", io.MultiWriter(tmp, h))
	if err == nil {
		err = tmp.Sync()
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("downloading %s: %w", t.Name, err)
	}
	if got := hex.EncodeToString(h.Sum(nil)); got != t.SHA256 {
		return fmt.Errorf("the download of %s does not match its SHA-256 (%s, want %s): try again", t.Name, got[:12], t.SHA256[:12])
	}
	if err := os.Rename(tmp.Name(), dest); err != nil {
		return err
	}
	fmt.Fprintf(out, "saved %s (%s, SHA-256 checked) to %s\n", t.Name, router.FormatSize(n), dest)
	return nil
}

func printTransfers(out io.Writer, ts []files.Transfer) {
	if len(ts) == 0 {
		fmt.Fprintln(out, "no file transfers: send one with `tern file send <contact> <path>`")
		return
	}
	tw := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tDIR\tPEER\tNAME\tSIZE\tDONE\tSTATE\tNOTE")
	for _, t := range ts {
		dir, peer := "out", t.PeerName
		if t.Incoming {
			dir = "in"
		}
		if peer == "" {
			peer = t.Peer[:8]
		}
		if t.GroupName != "" {
			peer += " in " + t.GroupName
		}
		pct := 100.0
		if t.Size > 0 {
			pct = 100 * float64(t.Bytes) / float64(t.Size)
		}
		note := t.Error
		if note == "" {
			note = t.Note
		}
		if t.Incoming && t.State == files.StateDone {
			note = "tern file get " + t.ID[:8]
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%.0f%%\t%s\t%s\n", t.ID[:8], dir, peer, t.Name, router.FormatSize(t.Size), pct, t.State, note)
	}
	tw.Flush()
}
