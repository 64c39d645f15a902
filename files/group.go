package files

// Files sent to a group. The sender sends one transfer per current member
// (sharing one outbox copy) and every offer names the group and the epoch
// of the membership the sender holds (FORMAT.md, group extension). A
// receiver shows the file in that group's conversation only when the
// sender is a current member there (and so is the receiver); otherwise it
// keeps the file as a 1:1 file from the sender, with a note saying why,
// so nothing accepted is lost and no one can put a file into a group they
// are not in. A label this node cannot judge yet (it holds an older
// membership than the offer's epoch, or none: the update is on its way)
// stays pending, shown 1:1, and is judged again at every change of group
// state (GroupsChanged).

import (
	"bytes"
	"encoding/hex"
	"errors"
	"fmt"
	"io"

	"github.com/ternmesh/tern/crypto"
)

// Verdicts of Groups.Judge.
const (
	// GroupMember: the sender and this node are current members; the
	// file belongs in the group.
	GroupMember = iota + 1
	// GroupOutside: the sender is not a current member here (or this node
	// is not): the file is a 1:1 file from the sender. Final.
	GroupOutside
	// GroupBehind: this node holds no membership of that epoch yet (or
	// does not know the group): ask again after the next change.
	GroupBehind
)

// Judgement is what Groups.Judge says of a group label.
type Judgement struct {
	Verdict int
	Name    string // the group's name, if known here
	Why     string // GroupOutside: why, for the user
}

// Groups judges the group label of an offer; node adapts *group.Manager
// to it. Judge must not call back into the Service.
type Groups interface {
	// Judge says whether sender may label a file for group g, offered as
	// of the sender's membership epoch.
	Judge(g [16]byte, epoch uint64, sender crypto.Address) Judgement
}

// Labels of incoming group files (record.Label).
const (
	labelIn      = "in"      // shown in the group
	labelPending = "pending" // not judged yet: shown 1:1 meanwhile
	labelOutside = "outside" // not believed: a 1:1 file
)

// groupRecord is the group part of a transfer's record.
type groupRecord struct {
	// Group is the group the offer names (outgoing: the group sent to).
	Group      []byte `json:"group,omitempty"`
	GroupEpoch uint64 `json:"group_epoch,omitempty"`
	GroupName  string `json:"group_name,omitempty"`
	// Label (incoming with a Group) is labelIn, labelPending or
	// labelOutside; LabelNote says why a file is not shown in the group.
	Label     string `json:"label,omitempty"`
	LabelNote string `json:"label_note,omitempty"`
	// Batch (outgoing to a group) is shared by the copies of one send.
	Batch string `json:"batch,omitempty"`
}

// batch checks the group options and returns a new batch ID for a group
// send ("" for a 1:1 send).
func (o SendOptions) batch(rand io.Reader) (string, error) {
	if o.Group == ([16]byte{}) {
		return "", nil
	}
	if o.GroupEpoch == 0 {
		return "", errors.New("files: a group file needs the group's epoch")
	}
	var b [16]byte
	if _, err := io.ReadFull(rand, b[:]); err != nil {
		return "", err
	}
	return hex.EncodeToString(b[:]), nil
}

func (o SendOptions) record(batch string) groupRecord {
	if batch == "" {
		return groupRecord{}
	}
	return groupRecord{Group: append([]byte(nil), o.Group[:]...), GroupEpoch: o.GroupEpoch, GroupName: o.GroupName, Batch: batch}
}

// sameGroup reports whether a repeated offer names the group the first one
// named.
func (g *groupRecord) sameGroup(o *Offer) bool {
	if o.Group == ([16]byte{}) {
		return len(g.Group) == 0
	}
	return bytes.Equal(g.Group, o.Group[:]) && g.GroupEpoch == o.GroupEpoch
}

// groupView fills the group fields of the API view.
func (g *groupRecord) groupView(v *Transfer) {
	v.Batch = g.Batch
	if len(g.Group) > 0 && (!v.Incoming || g.Label == labelIn) {
		v.Group, v.GroupName = hex.EncodeToString(g.Group), g.GroupName
	}
	if v.Incoming && g.LabelNote != "" && g.Label != labelIn {
		v.Note = g.LabelNote
	}
}

// label judges the group label of a new incoming offer into r.
func (s *Service) label(r *record, o *Offer) {
	if o.Group == ([16]byte{}) {
		return
	}
	r.Group, r.GroupEpoch = append([]byte(nil), o.Group[:]...), o.GroupEpoch
	s.judge(r)
}

// judge applies the Groups' judgement of r's label; it reports whether r
// changed.
func (s *Service) judge(r *record) bool {
	j := Judgement{Verdict: GroupOutside, Why: "this node does not follow groups"}
	if s.cfg.Groups != nil {
		j = s.cfg.Groups.Judge([16]byte(r.Group), r.GroupEpoch, r.Peer)
	}
	who := s.cfg.Name(r.Peer)
	if who == "" {
		who = r.Peer.Short()
	}
	before := r.groupRecord
	switch j.Verdict {
	case GroupMember:
		r.Label, r.GroupName, r.LabelNote = labelIn, j.Name, ""
	case GroupBehind:
		r.Label = labelPending
		r.LabelNote = fmt.Sprintf("%s sent this file to a group whose membership has not reached this node yet: it is shown here until it does", who)
	default:
		r.Label, r.GroupName = labelOutside, j.Name
		r.LabelNote = fmt.Sprintf("%s sent this file to a group, but %s: it is kept as a file from %s", who, j.Why, who)
		if j.Name != "" {
			r.LabelNote = fmt.Sprintf("%s sent this file to the group %q, but %s: it is kept as a file from %s", who, j.Name, j.Why, who)
		}
	}
	return before.Label != r.Label || before.GroupName != r.GroupName || before.LabelNote != r.LabelNote
}

// GroupsChanged tells the service that some group's membership changed:
// labels that were pending are judged again (in the background).
func (s *Service) GroupsChanged() { poke(s.regroup) }

func (s *Service) regroupLoop() {
	defer s.wg.Done()
	for {
		select {
		case <-s.ctx.Done():
			return
		case <-s.regroup:
		}
		s.mu.Lock()
		ts := make([]*transfer, 0, len(s.transfers))
		for _, t := range s.transfers {
			ts = append(ts, t)
		}
		s.mu.Unlock()
		for _, t := range ts {
			t.mu.Lock()
			if t.rec.Incoming && t.rec.Label == labelPending && s.judge(&t.rec) {
				if err := s.save(t); err != nil {
					s.log.Error("saving a file's group label failed", "err", err)
				}
				s.log.Info("group label of a received file judged", "transfer", hex.EncodeToString(t.key[:]), "label", t.rec.Label, "group", t.rec.GroupName)
				s.changed(t, true)
			}
			t.mu.Unlock()
		}
	}
}

// Batch is one file sent to a group as one bubble shows it: the transfers
// to each member, and what they add up to.
type Batch struct {
	ID        string `json:"batch"`
	Group     string `json:"group"`
	GroupName string `json:"group_name"`
	Name      string `json:"name"`
	Size      int64  `json:"size"` // of the file
	// Members is how many members it goes to; Delivered of them have it
	// (checked), Failed refused it or it was cancelled.
	Members   int `json:"members"`
	Delivered int `json:"delivered"`
	Failed    int `json:"failed"`
	// Bytes acknowledged by all members together, of Total (Size times
	// Members).
	Bytes int64 `json:"bytes"`
	Total int64 `json:"total"`
	// State is StateDone once every member has the file, StateFailed when
	// none is left under way and some did not get it, StateQueued while
	// no member has answered, StateSending otherwise.
	State     string     `json:"state"`
	Transfers []Transfer `json:"transfers"`
}

// Combine sums the transfers of one batch (ts non-empty, one batch).
func Combine(ts []Transfer) Batch {
	b := Batch{Transfers: ts, Members: len(ts), State: StateQueued}
	if len(ts) == 0 {
		return b
	}
	b.ID, b.Group, b.GroupName, b.Name, b.Size = ts[0].Batch, ts[0].Group, ts[0].GroupName, ts[0].Name, ts[0].Size
	open, answered := 0, false
	for _, t := range ts {
		b.Bytes += t.Bytes
		b.Total += t.Size
		switch t.State {
		case StateDone:
			b.Delivered++
		case StateFailed, StateCancelled:
			b.Failed++
		case StateSending:
			open++
			answered = true
		default:
			open++
		}
	}
	switch {
	case b.Delivered == b.Members:
		b.State = StateDone
	case open == 0:
		b.State = StateFailed
	case answered || b.Delivered > 0:
		b.State = StateSending
	}
	return b
}
