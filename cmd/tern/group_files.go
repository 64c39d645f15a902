package main

import (
	"context"
	"fmt"
	"io"
	"net/url"
	"strings"
	"time"

	"github.com/ternmesh/tern/api"
	"github.com/ternmesh/tern/files"
	"github.com/ternmesh/tern/router"
)

// followBatch draws the progress of a file sent to a group (one transfer
// per member, summed) until every member has it or none is left under
// way; per-member failures are listed and make it an error.
func followBatch(ctx context.Context, c *api.Client, bt files.Batch, evs <-chan files.Event, out io.Writer) error {
	ts := map[string]files.Transfer{}
	var order []string
	var names []string
	for _, t := range bt.Transfers {
		ts[t.ID] = t
		order = append(order, t.ID)
		names = append(names, memberName(t))
	}
	chunks := 0
	if len(bt.Transfers) > 0 {
		chunks = bt.Transfers[0].Chunks
	}
	fmt.Fprintf(out, "sending %s (%s, %d chunks) to the group %s: %s (%s); batch %s\n", bt.Name, router.FormatSize(bt.Size), chunks,
		bt.GroupName, plural(bt.Members, "member"), strings.Join(names, ", "), bt.ID[:8])
	bar := newProgress(out, time.Now())
	notes := map[string]string{}
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	for {
		list := make([]files.Transfer, 0, len(order))
		for _, id := range order {
			list = append(list, ts[id])
		}
		bt = files.Combine(list)
		for _, t := range list {
			if t.Note != "" && t.Note != notes[t.ID] {
				bar.clear()
				fmt.Fprintf(out, "note for %s: %s\n", memberName(t), t.Note)
			}
			notes[t.ID] = t.Note
		}
		bar.draw(bt.Bytes, bt.Total, fmt.Sprintf("delivered to %d of %d", bt.Delivered, bt.Members))
		switch bt.State {
		case files.StateDone:
			bar.end()
			who, verb := fmt.Sprintf("all %d members", bt.Members), "have"
			if bt.Members == 1 {
				who, verb = "the only other member", "has"
			}
			fmt.Fprintf(out, "delivered: %s of %s %s %s (SHA-256 checked)\n", who, bt.GroupName, verb, bt.Name)
			return nil
		case files.StateFailed:
			bar.end()
			for _, t := range list {
				if t.State != files.StateDone {
					fmt.Fprintf(out, "  %s: %s: %s\n", memberName(t), t.State, t.Error)
				}
			}
			return fmt.Errorf("%s delivered to %d of %d members of %s", bt.Name, bt.Delivered, bt.Members, bt.GroupName)
		}
		select {
		case <-ctx.Done():
			bar.end()
			fmt.Fprintf(out, "the transfers go on in the daemon: follow them with `tern files`\n")
			return nil
		case e := <-evs:
			if old, ok := ts[e.File.ID]; ok && !final(old.State) {
				ts[e.File.ID] = e.File
			}
		case <-tick.C:
			var now []files.Transfer
			if err := c.Do(ctx, "GET", "/v1/files?peer="+url.QueryEscape(bt.Group), nil, &now); err == nil {
				for _, t := range now {
					if _, ok := ts[t.ID]; ok {
						ts[t.ID] = t
					}
				}
			}
		}
	}
}

func final(state string) bool {
	return state == files.StateDone || state == files.StateFailed || state == files.StateCancelled
}

// plural is "1 member" or "n members".
func plural(n int, what string) string {
	if n == 1 {
		return "1 " + what
	}
	return fmt.Sprintf("%d %ss", n, what)
}

func memberName(t files.Transfer) string {
	if t.PeerName != "" {
		return t.PeerName
	}
	return t.Peer[:8]
}
