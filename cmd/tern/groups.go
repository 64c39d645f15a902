package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"net/url"
	"strings"
	"text/tabwriter"

	"github.com/ternmesh/tern/api"
	"github.com/ternmesh/tern/chat"
	"github.com/ternmesh/tern/group"
)

// groupCommand runs `tern groups` and `tern group create|add|rm|show|send`,
// thin clients of /v1/groups (api/groups.go).
func groupCommand(ctx context.Context, cmd string, args []string, out io.Writer) error {
	fs := flag.NewFlagSet("tern "+cmd, flag.ContinueOnError)
	data := fs.String("data", defaultDataDir(), "data directory of the daemon")
	pos, err := parseInterleaved(fs, args)
	if err != nil {
		return err
	}
	c := api.NewClient(socketPath(*data))
	need := func(n int, what string) error {
		if len(pos) < n {
			return fmt.Errorf("usage: tern %s %s", cmd, what)
		}
		return nil
	}
	gpath := func(g string) string { return "/v1/groups/" + url.PathEscape(g) }
	var in group.Info
	switch cmd {
	case "groups":
		var gs []group.Info
		if err := c.Do(ctx, "GET", "/v1/groups", nil, &gs); err != nil {
			return err
		}
		if len(gs) == 0 {
			fmt.Fprintln(out, "no groups: create one with `tern group create <name> <contact>...`")
			return nil
		}
		tw := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "NAME\tID\tMEMBERS\tOWNER\tSTATE")
		for _, g := range gs {
			fmt.Fprintf(tw, "%s\t%s\t%d\t%s\t%s\n", g.Name, g.ID[:8], len(g.Members), g.OwnerName, groupState(g))
		}
		tw.Flush()
		return nil
	case "group create":
		if err := need(1, "<name> [contact...]"); err != nil {
			return err
		}
		if err := c.Do(ctx, "POST", "/v1/groups", api.CreateGroup{Name: pos[0], Members: pos[1:]}, &in); err != nil {
			return err
		}
		fmt.Fprintf(out, "created %q (%s) with %d members\n", in.Name, in.ID[:8], len(in.Members))
	case "group add":
		if err := need(2, "<group> <contact>"); err != nil {
			return err
		}
		if err := c.Do(ctx, "POST", gpath(pos[0])+"/members", api.AddMember{Member: pos[1]}, &in); err != nil {
			return err
		}
		fmt.Fprintf(out, "added %s to %q: %d members, new key (epoch %d)\n", pos[1], in.Name, len(in.Members), in.Epoch)
	case "group rm":
		if err := need(2, "<group> <member>"); err != nil {
			return err
		}
		if err := c.Do(ctx, "DELETE", gpath(pos[0])+"/members/"+url.PathEscape(pos[1]), nil, &in); err != nil {
			return err
		}
		fmt.Fprintf(out, "removed %s from %q: %d members, new key (epoch %d); %s cannot read what is written from now on\n", pos[1], in.Name, len(in.Members), in.Epoch, pos[1])
	case "group show":
		if err := need(1, "<group>"); err != nil {
			return err
		}
		if err := c.Do(ctx, "GET", gpath(pos[0]), nil, &in); err != nil {
			return err
		}
		fmt.Fprintf(out, "%s  (id %s, epoch %d, %s)\n", in.Name, in.ID, in.Epoch, groupState(in))
		for _, m := range in.Members {
			var tags []string
			if m.Owner {
				tags = append(tags, "owner")
			}
			if m.Me {
				tags = append(tags, "you")
			}
			fmt.Fprintf(out, "  %-20s %s  %s\n", m.Name, m.Address, strings.Join(tags, ", "))
		}
		return nil
	case "group send":
		if err := need(2, "<group> <text>"); err != nil {
			return err
		}
		var rec chat.Record
		if err := c.Do(ctx, "POST", gpath(pos[0])+"/messages", api.GroupSend{Text: strings.Join(pos[1:], " ")}, &rec); err != nil {
			return err
		}
		fmt.Fprintf(out, "%s to %s (%d members): %s (message %s)\n", rec.State, rec.PeerName, len(rec.Members), rec.Text, rec.ID[:8])
		if rec.Note != "" {
			fmt.Fprintln(out, "note:", rec.Note)
		}
		return nil
	}
	if in.Note != "" {
		fmt.Fprintln(out, "note:", in.Note)
	}
	return nil
}

func groupState(g group.Info) string {
	switch {
	case g.Removed:
		return "you were removed"
	case g.IsOwner:
		return "you own it"
	}
	return "member"
}

// pathLabel names a medium as people say it.
func pathLabel(medium string) string {
	switch medium {
	case "lan":
		return "LAN"
	case "lora":
		return "LoRa"
	case "packet-radio":
		return "packet radio"
	}
	return medium
}

// conversationOf finds what `tern chat who` talks to: a contact's address,
// or else a group's ID.
func conversationOf(ctx context.Context, c *api.Client, who string) string {
	var ct []chat.Contact
	if c.Do(ctx, "GET", "/v1/contacts", nil, &ct) == nil {
		for _, x := range ct {
			if strings.EqualFold(x.Name, who) || strings.HasPrefix(x.Address, strings.ToLower(who)) {
				return x.Address
			}
		}
	}
	var g group.Info
	if c.Do(ctx, "GET", "/v1/groups/"+url.PathEscape(who), nil, &g) == nil {
		return g.ID
	}
	return ""
}

// markRead tells the daemon the user has seen these incoming messages, so
// their authors get read receipts.
func markRead(ctx context.Context, c *api.Client, who string, recs ...chat.Record) {
	var ids []string
	for _, r := range recs {
		if r.Incoming && r.Kind == "" && r.State == chat.StateReceived {
			ids = append(ids, r.ID)
		}
	}
	if len(ids) > 0 {
		c.Do(ctx, "POST", "/v1/messages/read", api.MarkRead{Peer: who, IDs: ids}, nil)
	}
}
