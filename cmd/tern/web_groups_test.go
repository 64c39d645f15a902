package main

import (
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/ternmesh/tern/api"
	"github.com/ternmesh/tern/chat"
	"github.com/ternmesh/tern/group"
)

// until polls a JavaScript condition in the page.
func (b *browser) until(what, js string) {
	b.t.Helper()
	b.do(what, chromedp.Poll[chromedp.Void](js))
}

// bubbleJS is a condition on the bubble (in the open conversation) whose
// text is text: dir "in" or "out", and a JS expression on li.
func bubbleJS(dir, text, cond string) string {
	return `Array.from(document.querySelectorAll('#messages li.` + dir + `')).some(li => li.querySelector('.text').textContent === ` + jsString(text) + ` && (` + cond + `))`
}

// statusOf reads the status line of the outgoing bubble with text.
func (b *browser) statusOf(text string) string {
	b.t.Helper()
	s, err := chromedp.Run(b.ctx, chromedp.Evaluate[string](`(Array.from(document.querySelectorAll('#messages li.out')).find(li => li.querySelector('.text').textContent === `+jsString(text)+`) || {querySelector: () => ({textContent: ''})}).querySelector('.status').textContent`))
	if err != nil {
		b.t.Fatalf("%s: reading the status of %q: %v", b.name, text, err)
	}
	return s
}

// TestWebUIGroupsAndReadReceiptsInRealBrowsers is the acceptance of issue 8
// for chat: two daemons driven through two headless Chromiums and a third
// daemon through its API. Onboarding, adding each other, a message each way
// that turns delivered and then read (and says it went via LAN), a message
// sent unencrypted with the warning shown; then alice creates a group of
// three in her browser, messages go both ways with per-member receipts,
// alice removes carol in her browser, carol is told and gets nothing
// written after.
func TestWebUIGroupsAndReadReceiptsInRealBrowsers(t *testing.T) {
	chromiumPath(t)
	start := time.Now()
	a, linkA := startWebDaemon(t, "alice-node")
	b, linkB := startWebDaemon(t, "bob-node")
	c := startDaemon(t, "carol")
	ba, bb := newBrowser(t, "alice's browser"), newBrowser(t, "bob's browser")

	cardA := ba.onboard(linkA, "Alice")
	cardB := bb.onboard(linkB, "Bob")
	ba.addContact(cardB, "Bob")
	bb.addContact(cardA, "Alice")
	c.do("POST", "/v1/contacts", api.AddContact{URI: cardA, Name: "Alice"}, nil)
	ba.do("add carol from her card", click("#nav-add"), visible("#add-uri"), chromedp.SetValue(chromedp.CSS("#add-uri"), c.card()),
		click("#add-submit"), visible(`#contacts button[data-name="carol"]`))
	ba.do("link to bob and carol", click("#nav-network"), visible("#link-url"), typeIn("#link-url", b.quic), click("#link-add"),
		visible(`#links tr[data-state="up"]`), typeIn("#link-url", c.quic), click("#link-add"))
	waitFor(t, "alice reaches bob and carol", func() bool { return a.hasRoute(b) && a.hasRoute(c) })

	// 1:1 with receipts both ways: delivered, then read when the other
	// side has the conversation on screen.
	ba.openChat("Bob")
	ba.send("Bob, are you at the hut?")
	ba.until("see it delivered via LAN", bubbleJS("out", "Bob, are you at the hut?", `li.dataset.state === 'delivered'`))
	if st := ba.statusOf("Bob, are you at the hut?"); !strings.Contains(st, "Delivered · sent via LAN") {
		t.Errorf("alice's delivered bubble says %q, want \"Delivered · sent via LAN\"", st)
	}
	bb.openChat("Alice")
	bb.until("see alice's message, marked as come over the LAN", bubbleJS("in", "Bob, are you at the hut?", `li.querySelector('.path').textContent === 'via LAN'`))
	ba.until("see it read once bob has looked", bubbleJS("out", "Bob, are you at the hut?", `li.dataset.state === 'read'`))
	if st := ba.statusOf("Bob, are you at the hut?"); !strings.Contains(st, "Read") {
		t.Errorf("alice's read bubble says %q", st)
	}
	bb.send("Yes, the stove is on.")
	ba.until("see bob's answer", bubbleJS("in", "Yes, the stove is on.", "true"))
	bb.until("see the answer read (alice has the chat open)", bubbleJS("out", "Yes, the stove is on.", `li.dataset.state === 'read'`))

	// Unencrypted, with the warning.
	ba.do("choose to send unencrypted", click("#composer-clear"), visible("#clear-warning"))
	if w := ba.text("#clear-warning"); !strings.Contains(w, "Anyone on the way can read it") {
		t.Errorf("the warning says %q", w)
	}
	ba.screenshot("chat-unencrypted.png")
	ba.send("CQ de Alice")
	ba.until("the sent bubble is marked unencrypted", bubbleJS("out", "CQ de Alice", `!!li.querySelector('.badge.warn')`))
	bb.until("bob sees it marked unencrypted", bubbleJS("in", "CQ de Alice", `li.querySelector('.badge.warn').textContent === 'Not encrypted'`))
	ba.do("back to encrypted", click("#composer-clear"), chromedp.WaitNotVisible(chromedp.CSS("#clear-warning")))
	ba.screenshot("chat-read.png")

	// A group of three, made in alice's browser.
	ba.do("create the group", click("#nav-newgroup"), visible("#newgroup-name"), typeIn("#newgroup-name", "Trip"),
		click(`#newgroup-members input[data-name="Bob"]`), click(`#newgroup-members input[data-name="carol"]`),
		click("#newgroup-create"), visible("#chat-members"))
	if got := ba.text("#chat-title"); got != "Trip" {
		t.Errorf("after creating, the open conversation is %q", got)
	}
	if sub := ba.text("#chat-sub"); !strings.Contains(sub, "3 members") {
		t.Errorf("group header says %q", sub)
	}
	bb.do("see the group in the list and open it", visible(`#contacts button[data-name="Trip"][data-group]`),
		click(`#contacts button[data-name="Trip"]`), visible("#chat-members"))
	bb.until("see how bob got in", `Array.from(document.querySelectorAll('#messages li.notice')).some(n => n.textContent === 'Alice added you to the group "Trip" with carol')`)
	var gid string
	waitFor(t, "carol is in the group", func() bool {
		var gs []group.Info
		c.do("GET", "/v1/groups", nil, &gs)
		if len(gs) == 1 && len(gs[0].Members) == 3 {
			gid = gs[0].ID
		}
		return gid != ""
	})

	ba.send("Hello Trip!")
	bb.until("bob sees alice's group message with her name", bubbleJS("in", "Hello Trip!", `li.querySelector('.from').textContent === 'Alice'`))
	ba.until("delivered to both, read by bob", bubbleJS("out", "Hello Trip!", `li.dataset.state === 'delivered' && li.querySelector('.status').textContent.includes('read by Bob')`))
	var ids []string
	waitFor(t, "carol has it", func() bool {
		ids = ids[:0]
		var hist []chat.Record
		c.do("GET", "/v1/groups/"+gid+"/messages", nil, &hist)
		for _, r := range hist {
			if r.Incoming && r.Text == "Hello Trip!" && r.FromName == "Alice" {
				ids = append(ids, r.ID)
			}
		}
		return len(ids) == 1
	})
	c.do("POST", "/v1/messages/read", api.MarkRead{Peer: gid, IDs: ids}, nil)
	ba.until("read by everyone", bubbleJS("out", "Hello Trip!", `li.dataset.state === 'read'`))
	if st := ba.statusOf("Hello Trip!"); st != "\u2713\u2713 Read by everyone" {
		t.Errorf("alice's group bubble says %q", st)
	}

	// Bob writes to the group: carol is no contact of his and has no link
	// to him; the copy goes through alice's node.
	bb.send("Bob here, bringing wood.")
	ba.until("alice sees bob's group message", bubbleJS("in", "Bob here, bringing wood.", `li.querySelector('.from').textContent === 'Bob'`))
	waitFor(t, "carol gets bob's message through alice", func() bool {
		var hist []chat.Record
		c.do("GET", "/v1/groups/"+gid+"/messages", nil, &hist)
		for _, r := range hist {
			if r.Text == "Bob here, bringing wood." && r.FromName == "Bob" {
				return true
			}
		}
		return false
	})
	bb.until("delivered to both", bubbleJS("out", "Bob here, bringing wood.", `li.dataset.state === 'delivered' || li.dataset.state === 'read'`))

	// Alice removes carol in her browser.
	ba.do("open the members", click("#chat-members"), visible(`#group-members li[data-name="carol"] button.remove`))
	if ba.text("#group-about") == "" {
		t.Error("the members view says nothing about the group")
	}
	ba.do("remove carol (asked, then confirmed)", click(`#group-members li[data-name="carol"] button.remove`),
		visible(`#group-members li[data-name="carol"] button.remove.confirm`),
		click(`#group-members li[data-name="carol"] button.remove.confirm`),
		chromedp.Poll[chromedp.Void](`!document.querySelector('#group-members li[data-name="carol"]') && document.querySelectorAll('#group-members li').length === 2`))
	ba.screenshot("group-members.png")
	waitFor(t, "carol learns she was removed", func() bool {
		var in group.Info
		c.do("GET", "/v1/groups/"+gid, nil, &in)
		return in.Removed
	})
	bb.until("bob is told", `Array.from(document.querySelectorAll('#messages li.notice')).some(n => n.textContent === 'Alice removed carol')`)
	if sub := bb.text("#chat-sub"); !strings.Contains(sub, "2 members") {
		t.Errorf("bob's group header after the removal: %q", sub)
	}
	ba.do("back to the conversation", click("#view-group .back"), visible("#composer-text"))
	ba.send("Carol has left the trip.")
	bb.until("bob gets the message after the removal", bubbleJS("in", "Carol has left the trip.", "true"))
	ba.until("it is read by bob, the only recipient", bubbleJS("out", "Carol has left the trip.", `li.dataset.state === 'read'`))
	elapsed := time.Since(start)
	ba.screenshot("group.png")
	bb.screenshot("group-bob.png")

	// Carol never got it, and her history says why.
	var hist []chat.Record
	c.do("GET", "/v1/groups/"+gid+"/messages", nil, &hist)
	var removedNotice bool
	for _, r := range hist {
		if r.Text == "Carol has left the trip." {
			t.Fatalf("carol, removed, has the message written after: %+v", r)
		}
		removedNotice = removedNotice || r.Kind == "notice" && r.Text == "Alice removed you from the group. You no longer receive its messages."
	}
	if !removedNotice {
		t.Errorf("carol's history has no removal notice: %+v", hist)
	}
	if out, err := c.cli("group", "send", "Trip", "wait for me"); err == nil || !strings.Contains(out, "removed you") {
		t.Errorf("carol can still write: %v %s", err, out)
	}
	t.Logf("onboarding to the message after the removal: %v", elapsed.Round(time.Millisecond))
}
