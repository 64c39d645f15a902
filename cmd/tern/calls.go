package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"net/url"
	"text/tabwriter"
	"time"

	"github.com/ternmesh/tern/api"
	"github.com/ternmesh/tern/call"
)

// cmdCalls prints the call history (`tern calls`). Calls themselves are
// made in the web UI: audio needs a browser's codecs.
func cmdCalls(ctx context.Context, args []string, out io.Writer) error {
	fs := flag.NewFlagSet("tern calls", flag.ContinueOnError)
	data := fs.String("data", defaultDataDir(), "data directory of the daemon")
	peer := fs.String("peer", "", "only calls with this contact")
	limit := fs.Int("limit", 50, "at most this many calls, the newest")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("tern calls takes no arguments (got %q): use --peer CONTACT", fs.Args())
	}
	var recs []call.Record
	q := url.Values{"limit": {fmt.Sprint(*limit)}}
	if *peer != "" {
		q.Set("peer", *peer)
	}
	if err := api.NewClient(socketPath(*data)).Do(ctx, "GET", "/v1/calls?"+q.Encode(), nil, &recs); err != nil {
		return err
	}
	if len(recs) == 0 {
		fmt.Fprintln(out, "No calls yet. Calls are made from a conversation in the web UI (`tern ui` prints its link).")
		return nil
	}
	tw := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "WHEN\tDIRECTION\tWITH\tSTATE\tLENGTH\tNOTE")
	for _, r := range recs {
		dir, who, length := "outgoing", r.PeerName, ""
		if r.Incoming {
			dir = "incoming"
		}
		if who == "" {
			who = r.Peer[:8]
		}
		if r.Answered > 0 && r.Ended > 0 {
			d := time.Duration(r.Ended-r.Answered) * time.Millisecond
			length = fmt.Sprintf("%d:%02d", int(d.Minutes()), int(d.Seconds())%60)
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", time.UnixMilli(r.Started).Format("2006-01-02 15:04"), dir, who, r.State, length, r.Reason)
	}
	return tw.Flush()
}
