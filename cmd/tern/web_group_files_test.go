package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	cdpbrowser "github.com/chromedp/cdproto/browser"
	"github.com/chromedp/chromedp"

	"github.com/ternmesh/tern/api"
	"github.com/ternmesh/tern/files"
	"github.com/ternmesh/tern/group"
)

// recordBatches makes the page remember every version of the group file
// bubbles put into the conversation (each change replaces the bubble, so
// the added nodes are the versions), as "delivered/members/state".
const recordBatches = `(() => {
  window.__batches = [];
  const keep = (n) => { if (n.dataset && n.dataset.batch) window.__batches.push(n.dataset.delivered + '/' + n.dataset.members + '/' + n.dataset.state); };
  new MutationObserver((ms) => { for (const m of ms) for (const n of m.addedNodes) keep(n); })
    .observe(document.querySelector('#messages'), { childList: true, subtree: true });
})()`

// callOffered is the JS test that the conversation header offers a call.
const callOffered = `(() => { const b = document.querySelector('#chat-call'); return !!b && !b.hidden && b.offsetParent !== null; })()`

// TestWebUISendsAFileToAGroup is issue 8's "file to a group" acceptance:
// alice and bob in headless Chromiums, carol a daemon driven through its
// API, one group of three. Alice attaches a file in the group's
// conversation: her one bubble sums both members' progress, passes
// "delivered to 1 of 2" and ends "Delivered to everyone" with each member's
// state in its details line; bob's browser shows the file in the group,
// from Alice (not in his 1:1 with her), and downloads identical bytes;
// carol has it too, under the group. Neither browser offers a call in the
// group, while both do in a 1:1.
func TestWebUISendsAFileToAGroup(t *testing.T) {
	chromiumPath(t)
	a, linkA := startWebDaemon(t, "alice-node")
	b, linkB := startWebDaemon(t, "bob-node")
	c := startDaemon(t, "carol")
	ba, bb := newBrowser(t, "alice's browser"), newBrowser(t, "bob's browser")
	cardA := ba.onboard(linkA, "Alice")
	cardB := bb.onboard(linkB, "Bob")
	ba.addContact(cardB, "Bob")
	bb.addContact(cardA, "Alice")
	a.do("POST", "/v1/contacts", api.AddContact{URI: c.card(), Name: "carol"}, nil)
	c.do("POST", "/v1/contacts", api.AddContact{URI: cardA, Name: "Alice"}, nil)
	a.addPeer(b)
	a.addPeer(c)
	waitFor(t, "alice reaches bob and carol", func() bool { return a.hasRoute(b) && a.hasRoute(c) })

	// A 1:1 offers a call.
	bb.openChat("Alice")
	bb.until("the 1:1 with alice offers a call", callOffered)

	var g group.Info
	a.do("POST", "/v1/groups", api.CreateGroup{Name: "Trip", Members: []string{"Bob", "carol"}}, &g)
	for _, d := range []*daemon{b, c} {
		waitFor(t, d.name+" is in the group", func() bool {
			var gs []group.Info
			d.do("GET", "/v1/groups", nil, &gs)
			return len(gs) == 1 && gs[0].ID == g.ID && len(gs[0].Members) == 3
		})
	}
	bb.do("open the group", visible(`#contacts button[data-name="Trip"][data-group]`), click(`#contacts button[data-name="Trip"]`), visible("#chat-members"))
	bb.until("no call is offered in the group", `!(`+callOffered+`)`)

	dir := t.TempDir()
	data := make([]byte, 6<<20+99)
	rand.Read(data)
	src := filepath.Join(dir, "trail map.bin")
	if err := os.WriteFile(src, data, 0o600); err != nil {
		t.Fatal(err)
	}
	ba.do("open the group", visible(`#contacts button[data-name="Trip"][data-group]`), click(`#contacts button[data-name="Trip"]`), visible("#chat-members"))
	ba.until("no call is offered in the group", `!(`+callOffered+`)`)
	if title := ba.attr("#composer-attach", "title"); !strings.Contains(title, "everyone in the group") {
		t.Errorf("the file button in the group says %q", title)
	}
	ba.do("watch the group file bubbles", chromedp.Evaluate[chromedp.Void](recordBatches), chromedp.Evaluate[chromedp.Void](recordProgress))
	start := time.Now()
	ba.do("attach the file in the group", chromedp.SetUploadFiles(chromedp.CSS("#file-input"), []string{src}))
	ba.do("see one bubble for both members", visible(`#messages li.file.batch[data-members="2"]`))
	if n := ba.count(`#messages li.file`); n != 1 {
		t.Errorf("alice's group conversation shows %d file bubbles, want 1", n)
	}
	ba.do("see it delivered to everyone", visible(`#messages li.file.batch[data-state="done"]`))
	elapsed := time.Since(start)
	if st := ba.text(`#messages li.file.batch .status`); st != "Delivered to everyone" {
		t.Errorf("alice's finished group bubble says %q", st)
	}
	members := ba.text(`#messages li.file.batch .file-members`)
	if !strings.Contains(members, "Bob: delivered") || !strings.Contains(members, "carol: delivered") {
		t.Errorf("the details line says %q, want each member delivered", members)
	}
	if hover := ba.attr(`#messages li.file.batch .status`, "title"); !strings.Contains(hover, "Bob: delivered\ncarol: delivered") {
		t.Errorf("the status's hover text is %q", hover)
	}
	seen, err := chromedp.Run(ba.ctx, chromedp.Evaluate[[]string](`window.__batches`))
	if err != nil || !contains(seen, "1/2/sending") || !contains(seen, "0/2/sending") {
		t.Errorf("alice's bubble went through %v (%v): want it sending, then delivered to 1 of 2, before done", seen, err)
	}
	moved, err := chromedp.Run(ba.ctx, chromedp.Evaluate[bool](intermediate))
	if err != nil || !moved {
		t.Errorf("alice's bar never showed a value between empty and full (%v)", err)
	}

	// Bob has it in the group, from Alice, and downloads it.
	bb.do("see the file in the group with a download button", visible(`#messages li.file.in[data-state="done"] button.download`))
	if from := bb.text(`#messages li.file.in .from`); from != "Alice" {
		t.Errorf("bob's group file bubble says it is from %q", from)
	}
	dl := t.TempDir()
	bb.do("download it", chromedp.Func(func(ctx context.Context, _ *chromedp.Target) error {
		_, err := chromedp.CallBrowser(ctx, cdpbrowser.SetDownloadBehavior, cdpbrowser.SetDownloadBehaviorParams{
			Behavior: cdpbrowser.SetDownloadBehaviorBehaviorAllow, DownloadPath: dl,
		})
		return err
	}), click(`#messages li.file.in button.download`))
	saved := filepath.Join(dl, "trail map.bin")
	waitFor(t, "the download lands", func() bool {
		st, err := os.Stat(saved)
		return err == nil && st.Size() == int64(len(data))
	})
	if got, err := os.ReadFile(saved); err != nil || !bytes.Equal(got, data) {
		t.Fatalf("bob's download differs from the file sent (%v)", err)
	}
	shotA, shotB := ba.screenshot("group-file-sent.png"), bb.screenshot("group-file-received.png")

	// The file is the group's, not the 1:1's, on both sides; calls stay
	// in the 1:1.
	bb.openChat("Alice")
	bb.until("the 1:1 offers a call again", callOffered)
	if n := bb.count(`#messages li.file`); n != 0 {
		t.Errorf("bob's 1:1 with alice shows %d file bubbles; the file belongs to the group", n)
	}
	ba.openChat("Bob")
	ba.until("alice's 1:1 with bob offers a call", callOffered)
	if n := ba.count(`#messages li.file`); n != 0 {
		t.Errorf("alice's 1:1 with bob shows %d file bubbles", n)
	}
	var ts []files.Transfer
	c.do("GET", "/v1/files?peer="+g.ID, nil, &ts)
	if len(ts) != 1 || ts[0].State != files.StateDone || ts[0].GroupName != "Trip" || ts[0].SHA256 != sha256Hex(data) {
		t.Errorf("carol's files in the group: %+v", ts)
	}
	t.Logf("6 MB to a group of three through the UI: attach to delivered to both in %v; screenshots %s, %s", elapsed.Round(time.Millisecond), shotA, shotB)
}

func (b *browser) attr(sel, name string) string {
	b.t.Helper()
	v, err := chromedp.Run(b.ctx, chromedp.Evaluate[string](`(document.querySelector(`+jsString(sel)+`) || {getAttribute: () => ''}).getAttribute(`+jsString(name)+`) || ''`))
	if err != nil {
		b.t.Fatalf("%s: reading %s of %s: %v", b.name, name, sel, err)
	}
	return v
}

func (b *browser) count(sel string) int {
	b.t.Helper()
	n, err := chromedp.Run(b.ctx, chromedp.Evaluate[int](`document.querySelectorAll(`+jsString(sel)+`).length`))
	if err != nil {
		b.t.Fatalf("%s: counting %s: %v", b.name, sel, err)
	}
	return n
}

func sha256Hex(b []byte) string {
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:])
}
