package node

import (
	"io"
	"path/filepath"

	"github.com/ternmesh/tern/bundle"
	"github.com/ternmesh/tern/chat"
	"github.com/ternmesh/tern/crypto"
	"github.com/ternmesh/tern/files"
	"github.com/ternmesh/tern/group"
	"github.com/ternmesh/tern/message"
	"github.com/ternmesh/tern/router"
)

// startFiles opens the file application (received files in DATA/files)
// and lets it receive message.File. Group files: labels are judged by the
// group application, and members who are not contacts are reached with the
// card their group lists.
func (n *Node) startFiles(app *chat.App, r *router.Router, groups *group.Manager) error {
	fc := n.cfg.Files
	fc.Dir = filepath.Join(n.cfg.DataDir, "files")
	fc.Store, fc.Messenger, fc.Paths = n.store, fileMessenger{app, groups}, r
	fc.Groups = fileGroups{groups}
	fc.Now, fc.Logger = n.cfg.Now, n.log
	fc.Name = func(a crypto.Address) string {
		if c, _, err := app.Resolve(a.String()); err == nil && c.Name != "" {
			return c.Name
		}
		name, _ := groups.MemberCard(a)
		return name
	}
	fs, err := files.New(fc)
	if err != nil {
		return err
	}
	app.Handle(message.File, fs)
	n.files = fs
	return nil
}

// Files is the file transfer application.
func (n *Node) Files() *files.Service { return n.files }

// SendGroupFile sends the file read from src, called name, to every
// current member of group but this node (one transfer each), labelled for
// the group.
func (n *Node) SendGroupFile(g, name string, src io.Reader, opt files.SendOptions) ([]files.Transfer, error) {
	aud, err := n.groups.Audience(g)
	if err != nil {
		return nil, err
	}
	opt.Group, opt.GroupEpoch, opt.GroupName = aud.ID, aud.Epoch, aud.Name
	return n.files.Send(aud.Members, name, src, opt)
}

// fileMessenger sends file messages; one to a fellow group member who is
// not a contact (and has no session yet) goes with the card the group
// lists.
type fileMessenger struct {
	app    *chat.App
	groups *group.Manager
}

func (m fileMessenger) SendMessage(to crypto.Address, msg *message.Message, opt chat.SendOptions) (*bundle.Bundle, error) {
	b, err := m.app.SendMessage(to, msg, opt)
	if err != nil && opt.Card == nil {
		if _, card := m.groups.MemberCard(to); card != nil {
			opt.Card = card
			return m.app.SendMessage(to, msg, opt)
		}
	}
	return b, err
}

// fileGroups judges group labels with the group application.
type fileGroups struct{ m *group.Manager }

func (g fileGroups) Judge(id [16]byte, epoch uint64, sender crypto.Address) files.Judgement {
	st, name, why := g.m.Judge(group.ID(id), epoch, sender)
	v := files.GroupOutside
	switch st {
	case group.CurrentMember:
		v = files.GroupMember
	case group.Behind:
		v = files.GroupBehind
	}
	return files.Judgement{Verdict: v, Name: name, Why: why}
}

// groupsChanged lets the file application judge pending group labels
// again. Group state changes only after Start registered every
// application (deliveries wait for it), so n.files is set by then.
func (n *Node) groupsChanged() {
	if n.files != nil {
		n.files.GroupsChanged()
	}
}
