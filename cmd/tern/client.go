package main

import (
	"bufio"
	"context"
	"flag"
	"fmt"
	"io"
	"math"
	"net/url"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/ternmesh/tern/api"
	"github.com/ternmesh/tern/chat"
	"github.com/ternmesh/tern/router"
)

// parseInterleaved parses flags that may come before or after positional
// arguments (`tern contact add URI --name alice`).
func parseInterleaved(fs *flag.FlagSet, args []string) ([]string, error) {
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			return nil, err
		}
		if fs.NArg() == 0 {
			return pos, nil
		}
		pos = append(pos, fs.Arg(0))
		args = fs.Args()[1:]
	}
}

func clientCommand(ctx context.Context, cmd string, args []string, in io.Reader, out io.Writer) error {
	fs := flag.NewFlagSet("tern "+cmd, flag.ContinueOnError)
	data := fs.String("data", defaultDataDir(), "data directory of the daemon")
	name := fs.String("name", "", "contact name (contact add)")
	peer := fs.String("peer", "", "only messages with this contact (inbox)")
	limit := fs.Int("limit", 50, "at most this many messages (inbox)")
	metrics := fs.Bool("metrics", false, "print the Prometheus metrics page (status)")
	clear := fs.Bool("over-air-clear", false, "send signed but NOT encrypted, so it may cross amateur radio (send)")
	pos, err := parseInterleaved(fs, args)
	if err != nil {
		return err
	}
	c := api.NewClient(socketPath(*data))
	need := func(n int, what string) error {
		if len(pos) != n {
			return fmt.Errorf("usage: tern %s %s", cmd, what)
		}
		return nil
	}
	switch cmd {
	case "id":
		var id api.ID
		if err := c.Do(ctx, "GET", "/v1/id", nil, &id); err != nil {
			return err
		}
		fmt.Fprintf(out, "address: %s\nname:    %s\nexpires: %s\n", id.Address, id.Name, id.Expires.Format(time.DateOnly))
		for _, l := range id.Listen {
			fmt.Fprintf(out, "listen:  %s\n", l)
		}
		fmt.Fprintf(out, "\ncontact card (give it to people who should reach you):\n%s\n\n", id.URI)
		qr, err := renderQR(id.QRURI)
		if err != nil {
			fmt.Fprintf(out, "(no QR code: %v)\n", err)
			return nil
		}
		fmt.Fprintf(out, "compact card as a QR code:\n%s", qr)
	case "sas":
		if err := need(1, "<contact>"); err != nil {
			return err
		}
		var r map[string]string
		if err := c.Do(ctx, "GET", "/v1/sas?contact="+url.QueryEscape(pos[0]), nil, &r); err != nil {
			return err
		}
		fmt.Fprintf(out, "%s\n\nCompare these digits with %s (in person or on a call). If they match, nobody is in between.\n", r["sas"], pos[0])
	case "contact add":
		if err := need(1, "<tern:uri> [--name NAME]"); err != nil {
			return err
		}
		var ct chat.Contact
		if err := c.Do(ctx, "POST", "/v1/contacts", api.AddContact{URI: pos[0], Name: *name}, &ct); err != nil {
			return err
		}
		fmt.Fprintf(out, "added %s (%s)\n", ct.Name, ct.Address)
	case "contacts":
		var cs []chat.Contact
		if err := c.Do(ctx, "GET", "/v1/contacts", nil, &cs); err != nil {
			return err
		}
		tw := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "NAME\tADDRESS")
		for _, ct := range cs {
			fmt.Fprintf(tw, "%s\t%s\n", ct.Name, ct.Address)
		}
		tw.Flush()
	case "peer add", "peer rm":
		if err := need(1, "<url>"); err != nil {
			return err
		}
		if cmd == "peer add" {
			if err := c.Do(ctx, "POST", "/v1/peers", api.AddPeer{URL: pos[0]}, nil); err != nil {
				return err
			}
			fmt.Fprintf(out, "connecting %s (kept across restarts; see `tern peers`)\n", pos[0])
		} else {
			if err := c.Do(ctx, "DELETE", "/v1/peers?url="+url.QueryEscape(pos[0]), nil, nil); err != nil {
				return err
			}
			fmt.Fprintf(out, "removed %s\n", pos[0])
		}
	case "peers":
		var ps []router.PeerInfo
		if err := c.Do(ctx, "GET", "/v1/peers", nil, &ps); err != nil {
			return err
		}
		printPeers(out, ps)
	case "status":
		if *metrics {
			s, err := c.Text(ctx, "/metrics")
			if err != nil {
				return err
			}
			fmt.Fprint(out, s)
			return nil
		}
		var st api.Status
		if err := c.Do(ctx, "GET", "/v1/status", nil, &st); err != nil {
			return err
		}
		printStatus(out, st)
	case "send":
		if len(pos) < 2 {
			return fmt.Errorf("usage: tern send <contact> <text>")
		}
		var rec chat.Record
		if err := c.Do(ctx, "POST", "/v1/messages", api.Send{To: pos[0], Text: strings.Join(pos[1:], " "), OverAirClear: *clear}, &rec); err != nil {
			return err
		}
		fmt.Fprintf(out, "%s to %s: %s (message %s)\n", rec.State, nameOrGroup(rec), rec.Text, rec.ID[:8])
		if rec.Clear {
			fmt.Fprintln(out, "note: sent signed but unencrypted (--over-air-clear): anyone on the way can read it")
		}
		if rec.Note != "" {
			fmt.Fprintln(out, "note:", rec.Note)
		}
	case "inbox":
		var recs []chat.Record
		q := fmt.Sprintf("/v1/messages?limit=%d&peer=%s", *limit, url.QueryEscape(*peer))
		if err := c.Do(ctx, "GET", q, nil, &recs); err != nil {
			return err
		}
		for _, r := range recs {
			fmt.Fprintln(out, formatRecord(r))
		}
	case "chat":
		if err := need(1, "<contact>"); err != nil {
			return err
		}
		return chatLoop(ctx, c, pos[0], in, out)
	}
	return nil
}

func nameOrGroup(r chat.Record) string {
	if r.Group {
		return "group " + r.PeerName
	}
	return nameOr(r)
}

func nameOr(r chat.Record) string {
	if r.PeerName != "" {
		return r.PeerName
	}
	return r.Peer[:8]
}

func formatRecord(r chat.Record) string {
	t := time.UnixMilli(r.Received).Format("2006-01-02 15:04")
	where := ""
	if r.Group {
		where = "[" + r.PeerName + "] "
	}
	switch {
	case r.Kind == "notice":
		return fmt.Sprintf("%s  %s-- %s", t, where, r.Text)
	case r.Incoming:
		mark := ""
		if r.Clear {
			mark = "  [signed, sent unencrypted]"
		}
		if r.Path != "" {
			mark += "  (via " + pathLabel(r.Path) + ")"
		}
		who := nameOr(r)
		if r.Group {
			who = r.FromName
		}
		return fmt.Sprintf("%s  %s%s: %s%s", t, where, who, r.Text, mark)
	}
	to := "-> " + nameOr(r)
	if r.Group {
		to = ""
	}
	return fmt.Sprintf("%s  %sme %s: %s  [%s]", t, where, to, r.Text, stateLabel(r))
}

// stateLabel is an outgoing message's state with the medium of its first
// hop ("forwarded via LAN") and, in a group, how many recipients got there.
func stateLabel(r chat.Record) string {
	s := r.State
	if len(r.Members) > 1 {
		n := 0
		for _, st := range r.Members {
			if chat.Rank(st) >= chat.Rank(chat.StateDelivered) {
				n++
			}
		}
		s += fmt.Sprintf(", delivered to %d of %d", n, len(r.Members))
	}
	if r.Path != "" {
		s += ", sent via " + pathLabel(r.Path)
	}
	return s
}

func printPeers(out io.Writer, ps []router.PeerInfo) {
	if len(ps) == 0 {
		fmt.Fprintln(out, "no links: add one with `tern peer add quic://host:port`")
		return
	}
	tw := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "LINK\tNEIGHBOUR\tSTATE\tRTT\tIN\tOUT\tQUEUED\tNOTE")
	for _, p := range ps {
		link := p.URL
		if link == "" {
			link = "(incoming) " + p.Remote
		}
		nb := p.Neighbour
		if len(nb) > 8 {
			nb = nb[:8]
		}
		note := p.Error
		if len(p.Silent) > 0 {
			note = strings.TrimSpace(note + " no answer over " + strings.Join(p.Silent, ", ") + ": traffic takes another link until it answers")
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%.1fms\t%dB\t%dB\t%d\t%s\n", link, nb, p.State, p.RTTMillis, p.BytesIn, p.BytesOut, p.Queued, note)
	}
	tw.Flush()
	for _, p := range ps {
		if r := p.Radio; r != nil {
			budget := "no airtime limit"
			if r.AirtimeUsed > 0 || r.AirtimeRemaining > 0 {
				budget = fmt.Sprintf("airtime used %s, remaining %s", r.AirtimeUsed.Round(time.Millisecond), r.AirtimeRemaining.Round(time.Millisecond))
			}
			fmt.Fprintf(out, "radio %s, neighbour %.8s: %s, %s, %d frames queued%s%s\n",
				r.Radio, p.Neighbour, signalReport(r.RSSI, r.SNR), budget, r.Queued, nextFree(r.NextFree), txErrors(r.TxErrors))
		}
	}
}

func printStatus(out io.Writer, st api.Status) {
	m := st.Metrics
	fmt.Fprintf(out, "node %s\nstore: %d bundles, %d bytes\n\n", st.Address, m.StoredNow, m.StoredBytes)
	tw := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "\tIN\tOUT\tSTORED\tDELIVERED\tEXPIRED\tREJECTED\tDUPLICATE")
	row := func(name string, c router.Counters) {
		fmt.Fprintf(tw, "%s\t%d\t%d\t%d\t%d\t%d\t%d\t%d\n", name, c.In, c.Out, c.Stored, c.Delivered, c.Expired, c.Rejected, c.Duplicate)
	}
	row("total", m.Total)
	for n, c := range m.ByNeighbour {
		row(n[:8], c)
	}
	tw.Flush()
	for reason, k := range m.Rejected {
		fmt.Fprintf(out, "rejected %s: %d\n", reason, k)
	}
	if len(st.Routes) > 0 {
		fmt.Fprintln(out, "\nroutes:")
		for _, r := range st.Routes {
			state := "live"
			if !r.Live {
				state = "stale"
			}
			if r.Penalty > 0 {
				state += fmt.Sprintf(", penalised +%d (its routes did not deliver, or it floods past its ingress limit)", r.Penalty)
			}
			if !r.Feasible {
				state += ", fallback only (not announced)"
			}
			// The metric is in cost units: 1 per wired hop, 2-4 per radio hop.
			fmt.Fprintf(out, "  %x via %x  cost %d  %s\n", r.Dest[:4], r.Via[:4], r.Hops, state)
		}
	}
}

// chatLoop prints the conversation and incoming messages and receipts as
// they arrive, and sends each line typed.
func chatLoop(ctx context.Context, c *api.Client, who string, in io.Reader, out io.Writer) error {
	var hist []chat.Record
	if err := c.Do(ctx, "GET", "/v1/messages?limit=20&peer="+url.QueryEscape(who), nil, &hist); err != nil {
		return err
	}
	for _, r := range hist {
		fmt.Fprintln(out, formatRecord(r))
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	markRead(ctx, c, who, hist...)
	peerAddr := conversationOf(ctx, c, who)
	go c.Events(ctx, func(e chat.Event) {
		if peerAddr != "" && e.Message.Peer != peerAddr {
			return
		}
		switch {
		case e.Type == "message":
			fmt.Fprintln(out, formatRecord(e.Message))
			markRead(ctx, c, who, e.Message)
		case e.Type == "status" && !e.Message.Incoming:
			fmt.Fprintf(out, "  [%s] %s\n", stateLabel(e.Message), e.Message.Text)
		}
	})
	fmt.Fprintf(out, "chatting with %s: type a line and press Enter; Ctrl-D to leave\n", who)
	sc := bufio.NewScanner(in)
	for sc.Scan() {
		text := strings.TrimSpace(sc.Text())
		if text == "" {
			continue
		}
		var rec chat.Record
		if err := c.Do(ctx, "POST", "/v1/messages", api.Send{To: who, Text: text}, &rec); err != nil {
			fmt.Fprintln(out, "not sent:", err)
			continue
		}
		fmt.Fprintf(out, "  [%s] %s\n", stateLabel(rec), rec.Text)
	}
	return sc.Err()
}

func signalReport(rssi, snr float64) string {
	if math.IsNaN(rssi) {
		return "no signal report from this radio"
	}
	return fmt.Sprintf("RSSI %.0f dBm, SNR %.1f dB", rssi, snr)
}

func txErrors(n uint64) string {
	if n == 0 {
		return ""
	}
	return fmt.Sprintf("; %d frames failed to transmit (see the log)", n)
}

// nextFree says when a radio whose airtime budget is spent may send again.
func nextFree(t time.Time) string {
	if t.IsZero() || !t.After(time.Now()) {
		return ""
	}
	return fmt.Sprintf("; airtime budget spent, next frame at %s (in %s)", t.Format("15:04:05"), time.Until(t).Round(time.Second))
}
