package review

import (
	"reflect"
	"testing"
	"time"
)

func TestDecide(t *testing.T) {
	t0 := time.Date(2026, 11, 28, 10, 0, 0, 0, time.UTC)
	p := Policy{QuietPeriod: 10 * time.Minute, CloseMargin: 15 * time.Minute}
	base := SessionFacts{WindowEnds: t0.Add(2 * time.Hour), LastUploadAt: t0.Add(time.Minute), Uploaded: []string{"a.csv"}}
	with := func(f func(*SessionFacts)) SessionFacts { s := base; f(&s); return s }
	tests := []struct {
		name    string
		facts   SessionFacts
		now     time.Time
		close   bool
		reason  string
		missing []string
		expired bool
	}{
		{"quiet period not yet passed waits", base, t0.Add(5 * time.Minute), false, "", nil, false},
		{"quiet period passed closes", base, t0.Add(11 * time.Minute), true, ReasonQuietPeriod, nil, false},
		{"quiet period boundary closes", base, t0.Add(11*time.Minute - 0), true, ReasonQuietPeriod, nil, false},
		{"manifest complete closes at once", with(func(s *SessionFacts) { s.Manifest = []string{"a.csv"} }), t0.Add(2 * time.Minute), true, ReasonManifestComplete, nil, false},
		{"manifest incomplete waits past quiet period", with(func(s *SessionFacts) { s.Manifest = []string{"a.csv", "b.csv"} }), t0.Add(30 * time.Minute), false, "", []string{"b.csv"}, false},
		{"manifest incomplete closes at deadline naming missing", with(func(s *SessionFacts) { s.Manifest = []string{"c.csv", "a.csv", "b.csv"} }), t0.Add(106 * time.Minute), true, ReasonDeadline, []string{"b.csv", "c.csv"}, false},
		{"deadline closes a busy session", with(func(s *SessionFacts) { s.LastUploadAt = t0.Add(104 * time.Minute) }), t0.Add(105 * time.Minute), true, ReasonDeadline, nil, false},
		{"past the window still tries to close", base, t0.Add(3 * time.Hour), true, ReasonDeadline, nil, false},
		{"empty session never closes", with(func(s *SessionFacts) { s.Uploaded = nil }), t0.Add(110 * time.Minute), false, "", nil, false},
		{"empty session past window is expired", with(func(s *SessionFacts) { s.Uploaded = nil }), t0.Add(2 * time.Hour), false, "", nil, true},
		{"empty session with empty manifest stays open", with(func(s *SessionFacts) { s.Uploaded = nil; s.Manifest = []string{} }), t0.Add(time.Minute), false, "", nil, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := Decide(tt.facts, p, tt.now)
			if d.Close != tt.close || d.Reason != tt.reason || d.Expired != tt.expired || !reflect.DeepEqual(d.Missing, tt.missing) {
				t.Fatalf("Decide = %+v, want close=%v reason=%q missing=%v expired=%v", d, tt.close, tt.reason, tt.missing, tt.expired)
			}
			if !d.Close && d.Why == "" {
				t.Errorf("a decision to wait must say why")
			}
		})
	}
}
