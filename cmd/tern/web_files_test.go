package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	cdpbrowser "github.com/chromedp/cdproto/browser"
	"github.com/chromedp/chromedp"

	"github.com/ternmesh/tern/files"
)

// recordProgress makes the page remember every value the file progress
// bars in the conversation take, so a test can tell live progress from a
// bar that jumped straight to the end.
const recordProgress = `(() => {
  window.__progress = [];
  const seen = () => { for (const p of document.querySelectorAll('#messages progress.file-bar')) window.__progress.push([p.value, p.max]); };
  new MutationObserver(seen).observe(document.querySelector('#messages'), { childList: true, subtree: true, attributes: true });
  seen();
})()`

// intermediate is the JS test that some bar was seen between empty and full.
const intermediate = `window.__progress.some(([v, m]) => m > 1 && v > 0 && v < m)`

// TestWebUISendsAFileBetweenTwoBrowsers is issue 8's files acceptance: two
// daemons and two headless Chromiums; Alice attaches a file in the
// conversation; both see a file bubble whose progress bar moves; Bob
// downloads it and gets identical bytes.
func TestWebUISendsAFileBetweenTwoBrowsers(t *testing.T) {
	chromiumPath(t)
	a, linkA := startWebDaemon(t, "alice-node")
	b, linkB := startWebDaemon(t, "bob-node")
	ba, bb := newBrowser(t, "alice's browser"), newBrowser(t, "bob's browser")
	cardA := ba.onboard(linkA, "Alice")
	cardB := bb.onboard(linkB, "Bob")
	ba.addContact(cardB, "Bob")
	bb.addContact(cardA, "Alice")
	a.addPeer(b)
	waitFor(t, "the nodes are linked", func() bool { return a.hasRoute(b) && b.hasRoute(a) })

	dir := t.TempDir()
	data := make([]byte, 20<<20+321)
	rand.Read(data)
	src := filepath.Join(dir, "site survey.bin")
	if err := os.WriteFile(src, data, 0o600); err != nil {
		t.Fatal(err)
	}
	// Bob says hello first, so Alice's node has a session to answer with
	// and Bob's conversation is open when the file comes.
	bb.openChat("Alice")
	bb.send("Send me the survey?")
	bb.do("watch the conversation's progress bars", chromedp.Evaluate[chromedp.Void](recordProgress))

	ba.openChat("Bob")
	ba.do("see the attach button", visible("#composer-attach"))
	ba.do("watch the conversation's progress bars", chromedp.Evaluate[chromedp.Void](recordProgress))
	start := time.Now()
	ba.do("attach the file", chromedp.SetUploadFiles(chromedp.CSS("#file-input"), []string{src}))
	ba.do("see the file bubble", visible(`#messages li.file.out`))
	if got := ba.text(`#messages li.file.out .file-name`); got != "site survey.bin" {
		t.Errorf("alice's bubble names %q", got)
	}
	ba.do("see it delivered", visible(`#messages li.file.out[data-state="done"]`))
	if st := ba.text(`#messages li.file.out .status`); !strings.Contains(st, "Delivered") {
		t.Errorf("alice's finished bubble says %q", st)
	}
	bb.do("see the received file with a download button", visible(`#messages li.file.in[data-state="done"] button.download`))
	elapsed := time.Since(start)
	for _, side := range []*browser{ba, bb} {
		side.do("see the bar full", chromedp.Poll[chromedp.Void](`(() => { const p = document.querySelector('#messages li.file progress'); return p && p.value === p.max; })()`))
		var moved bool
		ctx, cancel := context.WithTimeout(side.ctx, 5*time.Second)
		moved, err := chromedp.Run(ctx, chromedp.Evaluate[bool](intermediate))
		cancel()
		if err != nil || !moved {
			t.Errorf("%s: the progress bar never showed a value between empty and full (%v)", side.name, err)
		}
	}

	// Bob downloads it.
	dl := t.TempDir()
	bb.do("allow downloads", chromedp.Func(func(ctx context.Context, _ *chromedp.Target) error {
		_, err := chromedp.CallBrowser(ctx, cdpbrowser.SetDownloadBehavior, cdpbrowser.SetDownloadBehaviorParams{
			Behavior: cdpbrowser.SetDownloadBehaviorBehaviorAllow, DownloadPath: dl,
		})
		return err
	}), click(`#messages li.file.in button.download`))
	saved := filepath.Join(dl, "site survey.bin")
	waitFor(t, "the download lands", func() bool {
		st, err := os.Stat(saved)
		return err == nil && st.Size() == int64(len(data))
	})
	got, err := os.ReadFile(saved)
	if err != nil || !bytes.Equal(got, data) {
		t.Fatalf("the downloaded file differs from the one sent (%v)", err)
	}
	var ts []files.Transfer
	b.do("GET", "/v1/files", nil, &ts)
	if len(ts) != 1 || ts[0].State != files.StateDone || ts[0].Name != "site survey.bin" {
		t.Errorf("bob's node lists %+v", ts)
	}
	t.Logf("20 MB through the UI: attach to received in %v; screenshots %s, %s", elapsed.Round(time.Millisecond),
		ba.screenshot("file-sent.png"), bb.screenshot("file-received.png"))
}
