package main

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/ternmesh/tern/api"
	"github.com/ternmesh/tern/web"
)

// startWebDaemon runs a daemon whose web UI listens on a free loopback port
// and returns it with the link `tern ui` prints for it; extra are more
// `tern run` flags.
func startWebDaemon(t *testing.T, name string, extra ...string) (*daemon, string) {
	t.Helper()
	d := startDaemon(t, name, append([]string{"--web", "127.0.0.1:0"}, extra...)...)
	var out bytes.Buffer
	if err := cmdUI(context.Background(), []string{"--data", d.data}, &out); err != nil {
		t.Fatalf("tern ui: %v\n%s", err, d.logText())
	}
	return d, strings.TrimSpace(out.String())
}

func TestWebUIRefusesRequestsWithoutTokenOrFromForeignHosts(t *testing.T) {
	d, link := startWebDaemon(t, "alice")
	u, err := url.Parse(link)
	if err != nil || u.Host == "" || !strings.HasPrefix(u.Fragment, "token=") {
		t.Fatalf("tern ui printed %q: want http://127.0.0.1:PORT/#token=...", link)
	}
	if !strings.HasPrefix(u.Host, "127.0.0.1:") {
		t.Errorf("web UI listens on %s: want loopback by default", u.Host)
	}
	token := strings.TrimPrefix(u.Fragment, "token=")
	base := "http://" + u.Host
	get := func(path, host string, hdr map[string]string) (int, string) {
		t.Helper()
		req, _ := http.NewRequest("GET", base+path, nil)
		if host != "" {
			req.Host = host
		}
		for k, v := range hdr {
			req.Header.Set(k, v)
		}
		c := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
		resp, err := c.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	if code, body := get("/v1/id", "", nil); code != http.StatusUnauthorized || !strings.Contains(body, "tern ui") {
		t.Errorf("no token: %d %s; want 401 saying to run `tern ui`", code, body)
	}
	if code, _ := get("/v1/messages", "", map[string]string{"Authorization": "Bearer " + strings.Repeat("0", 64)}); code != http.StatusUnauthorized {
		t.Errorf("wrong token: %d, want 401", code)
	}
	auth := map[string]string{"Authorization": "Bearer " + token}
	if code, body := get("/v1/id", "attacker.example:"+u.Port(), auth); code != http.StatusForbidden {
		t.Errorf("foreign Host header (DNS rebinding): %d %s, want 403", code, body)
	}
	code, body := get("/v1/profile", "localhost:"+u.Port(), auth)
	var p api.ProfileInfo
	if code != http.StatusOK || json.Unmarshal([]byte(body), &p) != nil || p.Address != d.addr || p.Named {
		t.Errorf("with token: %d %s; want this node's profile, name not yet chosen", code, body)
	}
	if code, _ := get("/?token="+token, "", nil); code != http.StatusSeeOther {
		t.Errorf("?token= link: %d, want a redirect that sets the cookie", code)
	}
	if code, _ := get("/v1/peers", "", map[string]string{"Cookie": web.CookieName + "=" + token}); code != http.StatusOK {
		t.Errorf("with the cookie: %d, want 200", code)
	}
	st, err := os.Stat(filepath.Join(d.data, web.TokenFile))
	if err != nil || st.Mode().Perm() != 0o600 {
		t.Errorf("token file: %v, mode %v; want 0600", err, st.Mode().Perm())
	}
	// The token survives a restart, so an open tab keeps working.
	d.stop()
	d.start("--web", "127.0.0.1:0")
	var out bytes.Buffer
	if err := cmdUI(context.Background(), []string{"--data", d.data}, &out); err != nil {
		t.Fatal(err)
	}
	if !strings.HasSuffix(strings.TrimSpace(out.String()), "#token="+token) {
		t.Errorf("after a restart tern ui prints %q: want the same token", out.String())
	}
	d.stop()
	if err := cmdUI(context.Background(), []string{"--data", d.data}, io.Discard); err == nil || !strings.Contains(err.Error(), "tern run") {
		t.Errorf("tern ui with no daemon: %v; want advice to start `tern run`", err)
	}
}

// chromiumPath finds Debian's chromium or skips the test.
func chromiumPath(t *testing.T) string {
	for _, p := range []string{"/usr/bin/chromium", "/usr/bin/chromium-browser"} {
		if _, err := os.Stat(p); err == nil {
			return p
		}
	}
	t.Skip("the web UI tests need Debian's chromium: apt-get install -y chromium (make test installs it as root)")
	return ""
}

// browser is one headless Chromium with its own profile.
type browser struct {
	t    *testing.T
	name string
	ctx  context.Context
}

// newBrowser starts Chromium for name; extra adds flags (the call tests'
// fake microphone).
func newBrowser(t *testing.T, name string, extra ...chromedp.ExecAllocatorOption) *browser {
	t.Helper()
	opts := []chromedp.ExecAllocatorOption{
		chromedp.ExecPath(chromiumPath(t)),
		chromedp.Headless, chromedp.NoSandbox, chromedp.DisableGPU, chromedp.NoFirstRun, chromedp.NoDefaultBrowserCheck,
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.Flag("disable-dev-shm-usage", true),
		chromedp.UserDataDir(t.TempDir()),
		chromedp.WindowSize(1100, 720),
	}
	opts = append(opts, extra...)
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancelTab := chromedp.NewContext(actx)
	t.Cleanup(func() { cancelTab(); cancelAlloc() })
	// Start the browser on the long-lived context: a browser started by a
	// step's short context would close when that step ends.
	if err := chromedp.Do(ctx); err != nil {
		t.Fatalf("starting chromium for %s: %v", name, err)
	}
	return &browser{t: t, name: name, ctx: ctx}
}

// do runs steps with a deadline and fails the test with what was expected.
func (b *browser) do(what string, steps ...chromedp.Action[chromedp.Void]) {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, 30*time.Second)
	defer cancel()
	if err := chromedp.Do(ctx, steps...); err != nil {
		b.t.Fatalf("%s: %s: %v\npage: %s", b.name, what, err, b.page())
	}
}

// page describes what the page shows, for failure messages.
func (b *browser) page() string {
	ctx, cancel := context.WithTimeout(b.ctx, 5*time.Second)
	defer cancel()
	s, err := chromedp.Run(ctx, chromedp.Evaluate[string](`(document.querySelector('#banner').textContent + ' | ' + document.body.innerText).slice(0, 1500)`))
	if err != nil {
		return err.Error()
	}
	return s
}

func (b *browser) text(sel string) string {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, 30*time.Second)
	defer cancel()
	s, err := chromedp.Run(ctx, chromedp.Text(chromedp.CSS(sel)))
	if err != nil {
		b.t.Fatalf("%s: reading %s: %v", b.name, sel, err)
	}
	return s
}

func (b *browser) value(sel string) string {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, 30*time.Second)
	defer cancel()
	s, err := chromedp.Run(ctx, chromedp.Value(chromedp.CSS(sel)))
	if err != nil {
		b.t.Fatalf("%s: reading %s: %v", b.name, sel, err)
	}
	return s
}

func visible(sel string) chromedp.Action[chromedp.Void] {
	return chromedp.WaitVisible(chromedp.CSS(sel))
}

// click clicks the element sel as a user would (visible, hit-tested). A
// list that re-renders between finding the element and clicking it (a
// read receipt arriving) leaves a stale node id behind ("Could not find
// node with given id"); the click is then tried again on the element
// now there.
func click(sel string) chromedp.Action[chromedp.Void] {
	return chromedp.Func(func(ctx context.Context, tg *chromedp.Target) error {
		var err error
		for range 5 {
			if err = chromedp.Do(ctx, chromedp.Click(chromedp.CSS(sel))); err == nil || !strings.Contains(err.Error(), "Could not find node with given id") {
				return err
			}
		}
		return err
	})
}
func typeIn(sel, text string) chromedp.Action[chromedp.Void] {
	return chromedp.SendKeys(chromedp.CSS(sel), text)
}

// onboard picks a name and returns the card link the page shows.
func (b *browser) onboard(link, name string) string {
	b.t.Helper()
	b.do("open the UI and see the name step", chromedp.Navigate(link), visible("#name-input"))
	b.do("choose a name", chromedp.Evaluate[chromedp.Void](`document.querySelector('#name-input').value = ''`), typeIn("#name-input", name), click("#name-save"))
	b.do("see the card step with its QR code", visible("#my-card"),
		chromedp.Poll[chromedp.Void](`document.querySelector('#my-qr').naturalWidth > 100`))
	card := b.value("#my-card")
	if !strings.HasPrefix(card, "tern:") {
		b.t.Fatalf("%s: card link %q, want tern:...", b.name, card)
	}
	return card
}

func (b *browser) addContact(card, wantName string) {
	b.t.Helper()
	b.do("paste a card link", chromedp.SetValue(chromedp.CSS("#onboard-add-uri"), card), click("#onboard-add-submit"),
		visible("#onboard-add .ok"))
	if got := b.text("#onboard-add .ok"); !strings.Contains(got, wantName) {
		b.t.Errorf("%s: after adding: %q, want it to name %s", b.name, got, wantName)
	}
	b.do("start chatting", click("#onboard-done"), visible(`#contacts button[data-name="`+wantName+`"]`))
}

func (b *browser) openChat(name string) {
	b.t.Helper()
	b.do("open the conversation with "+name, click(`#contacts button[data-name="`+name+`"]`), visible("#composer-text"))
}

func (b *browser) send(text string) {
	b.t.Helper()
	b.do("send "+text, typeIn("#composer-text", text), click("#composer-send"),
		chromedp.Poll[chromedp.Void](`Array.from(document.querySelectorAll('#messages li.out .text')).some(e => e.textContent === `+jsString(text)+`)`))
}

func jsString(s string) string { b, _ := json.Marshal(s); return string(b) }

// TestWebUITwoPeopleChatInRealBrowsers is issue 8's acceptance: two daemons
// and two headless Chromiums; each person picks a name, sees their card,
// adds the other by pasting the link; a message written while no link
// exists waits, flows when the link is added from the network page, and
// the sender sees it delivered; the reply comes back live.
func TestWebUITwoPeopleChatInRealBrowsers(t *testing.T) {
	chromiumPath(t)
	start := time.Now()
	a, linkA := startWebDaemon(t, "alice-node")
	b, linkB := startWebDaemon(t, "bob-node")
	ba, bb := newBrowser(t, "alice's browser"), newBrowser(t, "bob's browser")

	cardA := ba.onboard(linkA, "Alice")
	cardB := bb.onboard(linkB, "Bob")
	bb.screenshot("onboarding-card.png")
	ba.addContact(cardB, "Bob")
	bb.addContact(cardA, "Alice")
	if got := ba.text("#me-name"); got != "Alice" {
		t.Errorf("alice's sidebar shows %q as her name", got)
	}

	// No link yet: the message is kept and says why it waits.
	ba.openChat("Bob")
	ba.send("Hello Bob, this is Alice")
	ba.do("see the message queued with a note", visible(`#messages li.out[data-state="queued"]`))
	if note := ba.text(`#messages li.out .note`); note == "" {
		t.Errorf("a queued message with no path shows no note")
	}

	// Link the two nodes from the network page.
	ba.do("add a link", click("#nav-network"), visible("#link-url"), typeIn("#link-url", b.quic), click("#link-add"),
		visible(`#links tr[data-state="up"]`))
	ba.openChat("Bob")
	ba.do("see the message delivered", visible(`#messages li.out[data-state="delivered"]`))
	if st := ba.text(`#messages li.out .status`); !strings.Contains(st, "Delivered") {
		t.Errorf("delivered bubble says %q", st)
	}

	bb.openChat("Alice")
	bb.do("receive alice's message", visible(`#messages li.in`))
	if got := bb.text(`#messages li.in .text`); got != "Hello Bob, this is Alice" {
		t.Errorf("bob sees %q", got)
	}
	bb.send("Hi Alice! Got it.")
	bb.do("see the reply delivered (or already read: alice has the conversation open)", visible(`#messages li.out[data-state="delivered"], #messages li.out[data-state="read"]`))
	ba.do("receive the reply live", visible(`#messages li.in`))
	if got := ba.text(`#messages li.in .text`); got != "Hi Alice! Got it." {
		t.Errorf("alice sees %q", got)
	}
	elapsed := time.Since(start)

	path := ba.screenshot("chat.png")
	t.Logf("screenshot of alice's chat: %s; onboarding to delivered reply took %v", path, elapsed.Round(time.Millisecond))

	// Both see the same safety numbers.
	ba.do("open verify", click("#chat-verify"), visible("#verify-sas span"))
	bb.do("open verify", click("#chat-verify"), visible("#verify-sas span"))
	sa, sb := ba.text("#verify-sas"), bb.text("#verify-sas")
	if sa == "" || sa != sb {
		t.Errorf("safety numbers differ: alice %q, bob %q", sa, sb)
	}
	// Bob's network page shows the link Alice opened, up.
	bb.do("see the link up", click("#nav-network"), visible(`#links tr[data-state="up"]`))
	if got := bb.text(`#links tr[data-state="up"] td`); !strings.Contains(got, "Alice") {
		t.Errorf("bob's network page names the neighbour %q, want Alice", got)
	}
	bb.screenshot("network.png")
	if a.addr == "" {
		t.Fatal("no address")
	}
}

// screenshot saves what the browser shows under t.TempDir() (or
// $TERN_WEB_SCREENSHOTS, to look at it) and returns the file.
func (b *browser) screenshot(name string) string {
	b.t.Helper()
	shot, err := chromedp.Run(b.ctx, chromedp.CaptureScreenshot())
	if err != nil {
		b.t.Fatalf("%s: screenshot: %v", b.name, err)
	}
	dir := b.t.TempDir()
	if d := os.Getenv("TERN_WEB_SCREENSHOTS"); d != "" {
		dir = d
	}
	path := filepath.Join(dir, name)
	if err := os.WriteFile(path, shot, 0o644); err != nil {
		b.t.Fatal(err)
	}
	return path
}
